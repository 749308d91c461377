// HandClust lab dashboard: small conveniences only; the page is complete without JavaScript.
(function () {
  "use strict";
  var jump = document.getElementById("clip-jump");
  if (jump) {
    jump.addEventListener("change", function () {
      if (jump.value) {
        var el = document.getElementById(jump.value);
        if (el) { el.scrollIntoView({ behavior: "smooth", block: "start" }); }
      }
    });
  }
  // click a figure to see it at full size (click again to close)
  var box = document.createElement("div");
  box.id = "lightbox";
  box.addEventListener("click", function () { box.className = ""; box.innerHTML = ""; });
  document.body.appendChild(box);
  Array.prototype.forEach.call(document.querySelectorAll("main img"), function (img) {
    img.addEventListener("click", function () {
      var big = document.createElement("img");
      big.src = img.src;
      big.alt = img.alt;
      box.innerHTML = "";
      box.appendChild(big);
      box.className = "open";
    });
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { box.className = ""; box.innerHTML = ""; }
  });
})();
