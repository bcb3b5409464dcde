"""The procedural renderer (rooms with exact depth, normals, instances, keypoints) and the
sample-corpus writer that lays its scenes out in the real source formats."""
