"""Fisheye rectification from an `intrinsics.json` (EgoClean phase 1), with cv2.fisheye.

Accepted schema (Egocentric-10K style; all numbers in pixels of the calibration resolution):

    {"fx": 1030.5, "fy": 1030.1, "cx": 960.2, "cy": 540.7,
     "k1": -0.012, "k2": 0.034, "k3": -0.021, "k4": 0.004,
     "width": 1920, "height": 1080,            # optional: calibration resolution (default: the video's)
     "balance": 0.0}                            # optional: 0 = crop to valid pixels, 1 = keep all

Equivalent matrix form: {"K": [[fx,0,cx],[0,fy,cy],[0,0,1]], "D": [k1,k2,k3,k4]} (also "camera_matrix" /
"dist_coeffs"). A nested {"intrinsics": {...}} object is unwrapped. When the calibration resolution differs
from the video's, K is scaled to the video. The file is looked up beside the clip as `<stem>.intrinsics.json`,
then `intrinsics.json` in the clip's folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from handclust_assets.lib.errors import ClipError

# Focal lengths a fisheye calibration can have, as shares of the frame's long side: a 280-degree circular fisheye
# is near 0.1, a narrow lens a few; outside this the numbers belong to another resolution (or are a typo).
FOCAL_RANGE = (0.05, 20.0)


@dataclass(frozen=True)
class FisheyeIntrinsics:
    K: np.ndarray  # 3x3 float64
    D: np.ndarray  # 4 float64 (k1..k4)
    width: int | None
    height: int | None
    balance: float
    source: str

    def scaled_to(self, width: int, height: int) -> FisheyeIntrinsics:
        """Intrinsics for frames of `width` x `height` (K scaled from the calibration resolution)."""
        if self.width is None or self.height is None or (self.width, self.height) == (width, height):
            return FisheyeIntrinsics(self.K.copy(), self.D.copy(), width, height, self.balance, self.source)
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0, 0] *= sx
        K[0, 2] *= sx
        K[1, 1] *= sy
        K[1, 2] *= sy
        return FisheyeIntrinsics(K, self.D.copy(), width, height, self.balance, self.source)


def find_intrinsics(video_path: str | Path) -> Path | None:
    """The intrinsics file that applies to a clip: `<stem>.intrinsics.json`, else `intrinsics.json` beside it."""
    p = Path(video_path)
    for cand in (p.with_name(p.stem + ".intrinsics.json"), p.parent / "intrinsics.json"):
        if cand.is_file():
            return cand
    return None


def _num(obj: dict, key: str, path: str | Path) -> float:
    if key not in obj:
        raise ClipError(path, f"bad intrinsics: missing key {key!r}")
    if isinstance(obj[key], bool):  # float(true) is 1.0: a JSON true is no number
        raise ClipError(path, f"bad intrinsics: {key!r} is not a number ({json.dumps(obj[key])})")
    try:
        v = float(obj[key])
    except (TypeError, ValueError) as e:
        raise ClipError(path, f"bad intrinsics: {key!r} is not a number ({obj[key]!r})") from e
    if not math.isfinite(v):
        raise ClipError(path, f"bad intrinsics: {key!r} is not finite")
    return v


def load_intrinsics(path: str | Path) -> FisheyeIntrinsics:
    """Parse and validate an intrinsics file; ClipError names the file and what is wrong."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ClipError(p, f"bad intrinsics: cannot read ({e})") from e
    return parse_intrinsics(data, source=p)


def parse_intrinsics(data: bytes | str | dict, source: str | Path) -> FisheyeIntrinsics:
    """Parse and validate intrinsics given as JSON bytes/text or an already-decoded object (e.g. read from a tar
    member); `source` names where they came from in errors and in `FisheyeIntrinsics.source`."""
    p = source
    if isinstance(data, dict):
        obj = data
    else:
        try:
            obj = json.loads(data)
        except UnicodeDecodeError as e:
            raise ClipError(p, f"bad intrinsics: not UTF-8 text ({e.reason})") from e
        except json.JSONDecodeError as e:
            raise ClipError(p, f"bad intrinsics: not valid JSON ({e.msg} at line {e.lineno})") from e
    if isinstance(obj, dict) and isinstance(obj.get("intrinsics"), dict):
        obj = obj["intrinsics"]
    if not isinstance(obj, dict):
        raise ClipError(p, "bad intrinsics: top level must be a JSON object")
    kkey = "K" if "K" in obj else ("camera_matrix" if "camera_matrix" in obj else None)
    if kkey is not None:
        try:
            K = np.asarray(obj[kkey], dtype=np.float64).reshape(3, 3)
            D = np.asarray(obj.get("D", obj.get("dist_coeffs")), dtype=np.float64).reshape(-1)[:4]
        except (TypeError, ValueError) as e:
            raise ClipError(p, f"bad intrinsics: {kkey!r}/'D' are not a 3x3 matrix and 4 coefficients") from e
        if D.size != 4:
            raise ClipError(p, "bad intrinsics: fisheye model needs 4 distortion coefficients k1..k4")
    else:
        fx, fy, cx, cy = (_num(obj, k, p) for k in ("fx", "fy", "cx", "cy"))
        D = np.array([_num(obj, k, p) if k in obj else 0.0 for k in ("k1", "k2", "k3", "k4")])
        if not any(k in obj for k in ("k1", "k2", "k3", "k4")):
            raise ClipError(p, "bad intrinsics: no fisheye coefficients k1..k4")
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    if not np.all(np.isfinite(K)) or not np.all(np.isfinite(D)):
        raise ClipError(p, "bad intrinsics: non-finite values")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ClipError(p, f"bad intrinsics: focal lengths must be positive (fx={K[0, 0]}, fy={K[1, 1]})")
    w = int(_num(obj, "width", p)) if "width" in obj else None
    h = int(_num(obj, "height", p)) if "height" in obj else None
    if (w is not None and w <= 0) or (h is not None and h <= 0):
        raise ClipError(p, "bad intrinsics: width/height must be positive")
    balance = _num(obj, "balance", p) if "balance" in obj else 0.0
    if not 0.0 <= balance <= 1.0:
        raise ClipError(p, f"bad intrinsics: balance must be in [0, 1], got {balance}")
    return FisheyeIntrinsics(K=K, D=D, width=w, height=h, balance=balance, source=str(p))


def check_intrinsics_fit(intr: FisheyeIntrinsics, width: int, height: int) -> None:
    """Reject intrinsics whose principal point lies outside the frame they are applied to, or whose focal lengths
    are far outside `FOCAL_RANGE` x the frame's long side (a lens calibrated at another resolution, with no
    `width` / `height` to scale it by; a typo): the rectified frames would be one smeared pixel or a needle's eye."""
    s = intr.scaled_to(width, height)
    cx, cy = s.K[0, 2], s.K[1, 2]
    if not (0 < cx < width and 0 < cy < height):
        raise ClipError(
            intr.source,
            f"bad intrinsics: principal point ({cx:.1f}, {cy:.1f}) lies outside the {width}x{height} frame",
        )
    side = max(width, height)
    for name, f in (("fx", s.K[0, 0]), ("fy", s.K[1, 1])):
        if not FOCAL_RANGE[0] * side <= f <= FOCAL_RANGE[1] * side:
            raise ClipError(
                intr.source,
                f"bad intrinsics: focal length {name}={f:.4g} px is implausible for a {width}x{height} frame "
                f"(expected {FOCAL_RANGE[0] * side:.0f}-{FOCAL_RANGE[1] * side:.0f} px; calibrated at another "
                f"resolution? give its width and height)",
            )


def undistort_maps(
    intr: FisheyeIntrinsics, src_size: tuple[int, int], out_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Remap tables that undistort a `src_size` fisheye frame straight into an `out_size` pinhole frame.

    Rectification and downscaling happen in one `cv2.remap`, so the frame cache pays for one resample.
    """
    sw, sh = src_size
    ow, oh = out_size
    s = intr.scaled_to(sw, sh)
    newK = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(
        s.K, s.D, (sw, sh), np.eye(3), balance=s.balance
    )
    newK = newK.copy()
    newK[0, :] *= ow / sw
    newK[1, :] *= oh / sh
    m1, m2 = cv2.fisheye.initUndistortRectifyMap(s.K, s.D, np.eye(3), newK, (ow, oh), cv2.CV_16SC2)
    if not np.isfinite(newK).all():
        raise ClipError(intr.source, "bad intrinsics: rectification produced a non-finite camera matrix")
    return m1, m2
