"""Datasets (VOC layout, COCO and folder conversions) and every artifact file format."""
