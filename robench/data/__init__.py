"""Datasets named by a spec (``cifar10``, ``imagefolder:PATH``, ``npz:PATH``, ``sample``)."""

from robench.data.imageset import ImageSet
from robench.data.specs import DATASETS, dataset_usages, load_dataset

__all__ = ["DATASETS", "ImageSet", "dataset_usages", "load_dataset"]
