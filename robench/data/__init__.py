"""Datasets named by a spec (``cifar10``, ``imagefolder:PATH``, ``npz:PATH``, ``sample``)."""

from robench.data.imageset import ImageSet
from robench.data.specs import DATASET_KINDS, load_dataset

__all__ = ["DATASET_KINDS", "ImageSet", "load_dataset"]
