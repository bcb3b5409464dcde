"""One module per source format: openimages, sa1b, coco, matting; synthetic/ renders scenes."""
