"""Video probing, fisheye rectification and the compact frame cache (pipeline steps 1-2)."""
