"""Hair-matting composites: placement geometry, foreground colour estimation, blending."""
