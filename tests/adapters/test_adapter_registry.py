"""The registry: every adapter declares its modality, and the per-modality tables derive from it."""

import inspect

import numpy as np
import pandas as pd
import pytest
import torch

from qgfd_diffusion.adapters import (
    ADAPTERS,
    CONDITION_KINDS,
    AudioAdapter,
    AudioAdapterConfig,
    DataSchema,
    ModalityAdapter,
    PatchImageAdapter,
    PatchImageConfig,
    TabularAdapter,
    TextAdapter,
    TextAdapterConfig,
    VideoAdapter,
    ViTImageAdapter,
    adapter_classes,
    collate_for,
    get_adapter_class,
    modalities,
    register_adapter,
    schema_for,
    unregister_adapter,
    writer_for,
)
from qgfd_diffusion.adapters.image import ImageModality

DECLARED = {  # registry name -> (modality, condition_kind)
    "text": ("text", "prompt"),
    "image": ("image", "label"),
    "patch_image": ("image", "label"),
    "audio": ("audio", None),
    "mel": ("audio", None),
    "video": ("video", "label"),
    "tabular": ("tabular", None),
    "graph_signal": ("graph_signal", None),
}


def test_every_adapter_declares_its_modality():
    assert {name: (cls.modality, cls.condition_kind) for name, cls in ADAPTERS.items()} == DECLARED
    assert modalities() == ("audio", "graph_signal", "image", "tabular", "text", "video")
    for cls in ADAPTERS.values():
        assert cls.condition_kind in CONDITION_KINDS
        assert isinstance(cls.schema, DataSchema) and cls.output_field
        for attribute in ("collate", "writer", "convert_output"):
            assert isinstance(inspect.getattr_static(cls, attribute), staticmethod)
        assert collate_for(cls.modality) is cls.collate
        assert writer_for(cls.modality) is cls.writer
        assert schema_for(cls.modality) is cls.schema


def test_one_modality_shares_its_declarations():
    assert adapter_classes("image") == [PatchImageAdapter, ViTImageAdapter]
    for attribute in ("schema", "collate", "writer", "output_field", "convert_output"):
        assert getattr(PatchImageAdapter, attribute) is getattr(ViTImageAdapter, attribute)
    assert VideoAdapter.collate is not PatchImageAdapter.collate


def test_a_registered_modality_is_derived_everywhere(smell):
    assert "smell" in modalities()
    assert collate_for("smell") is smell.collate
    assert writer_for("smell") is smell.writer
    assert schema_for("smell") is smell.schema
    assert get_adapter_class("smell") is smell and smell.name == "smell"
    assert unregister_adapter("smell") is smell
    assert "smell" not in modalities()
    with pytest.raises(ValueError, match="unknown modality 'smell'; allowed: audio, graph_sig"):
        collate_for("smell")
    with pytest.raises(ValueError, match="unknown adapter 'smell'"):
        unregister_adapter("smell")


def test_a_new_modality_reaches_data_pipeline_and_writer(smell, tmp_path):
    """Registering one adapter class (tests/conftest.py) is all a modality needs: files load in
    its schema through its decode hook, batches collate its way, the pipeline returns its
    samples under its output field in its output types, and the sample writer writes them."""
    from qgfd_diffusion import DiffusionConfig, QGFDPipeline, SharedQGFDDiffusionModel
    from qgfd_diffusion.data import dataset_metadata, load_dataset_source, make_dataloader
    from qgfd_diffusion.sample.writers import write_decoded

    lines = tmp_path / "smells.txt"
    lines.write_text(" Rose\nSMOKE \nmoss\nrain\n")
    dataset = load_dataset_source(
        "files", files=[str(lines)], format="text", column="text", modality="smell"
    )
    assert dataset_metadata(dataset)["modality"] == "smell" and dataset.column_names == ["smell"]
    assert sorted(dataset["smell"]) == ["moss", "rain", "rose", "smoke"]  # its decode hook
    loader = make_dataloader(dataset, "smell", batch_size=2, seed=0, shuffle=False)
    batch = next(iter(loader))
    assert isinstance(batch, list) and len(batch) == 2  # its collate: a list of words

    adapter = smell().fit_latent_stats([batch])
    cfg = DiffusionConfig(d_model=16, num_heads=2, num_layers=1, d_ff=32, latent_dim=8)
    model = SharedQGFDDiffusionModel(cfg, adapters={"smell": adapter})
    model.encode("smell", batch)  # records the modality's latent layout
    pipe = QGFDPipeline.from_model(model)
    run = lambda output_type: pipe(  # noqa: E731
        "smell", num_samples=3, num_inference_steps=2, output_type=output_type,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    words = run("pil").smells
    assert isinstance(words, list) and len(words) == 3 and all(isinstance(w, str) for w in words)
    assert run("np").smells.tolist() == words  # its convert_output
    assert "smells" not in run("latent")  # latents only

    (path,) = write_decoded(tmp_path / "out", "smell", words)  # its writer
    assert path.read_text() == " ".join(words)


IMAGE_DECLARATIONS = {k: ImageModality.__dict__[k] for k in ("modality", "schema", "collate")}


@pytest.mark.parametrize(
    ("declarations", "match"),
    [
        ({"modality": ""}, "must declare modality"),
        ({"modality": None}, "must declare modality"),
        ({"condition_kind": "smell"}, "condition_kind must be one of .*'label', 'prompt'"),
        ({"schema": None}, "must declare schema, a DataSchema"),
        ({"output_field": "latents"}, "must declare output_field, an identifier other than"),
        ({"output_field": "two words"}, "must declare output_field"),
        ({"collate": list}, "must declare collate = staticmethod"),
        ({"writer": None}, "must declare writer = staticmethod"),
        ({"convert_output": print}, "must declare convert_output = staticmethod"),
        (
            {"modality": "image", "collate": staticmethod(list)},
            "another schema than PatchImageAdapter for modality 'image'",
        ),
        (
            {**IMAGE_DECLARATIONS, "collate": staticmethod(list)},
            "another collate than PatchImageAdapter for modality 'image'",
        ),
        (IMAGE_DECLARATIONS, "another writer than PatchImageAdapter"),
        (
            {"schema": DataSchema(column="smell", feature="Image")},
            "schema feature 'Image' already marks modality 'image'",
        ),
    ],
)
def test_registration_checks_declarations(smell_class, declarations, match):
    bad = type("BadAdapter", (smell_class,), declarations)
    with pytest.raises(ValueError, match=match):
        register_adapter("bad_test")(bad)
    assert "bad_test" not in ADAPTERS


def test_prepare_batch_keeps_labels_only_where_used():
    images, labels = torch.rand(2, 1, 4, 4), torch.tensor([1, 0])
    raw = {"images": images, "labels": labels}
    plain = PatchImageAdapter(PatchImageConfig(image_size=4, patch_size=2, channels=1))
    assert plain.prepare_batch(raw).keys() == {"images"}
    labelled = PatchImageAdapter(
        PatchImageConfig(image_size=4, patch_size=2, channels=1, num_classes=2)
    )
    assert labelled.prepare_batch(raw) is raw
    assert plain.prepare_batch(images) is images


# Raw examples in each modality's schema (what the data layer serves), two per modality.
EXAMPLES = {
    "text": [{"text": "the cat sat"}, {"text": "a dog ran in the park"}],
    "image": [{"image": np.full((1, 4, 4), 0.5, np.float32), "label": k} for k in (1, 0)],
    "audio": [{"audio": np.zeros(n, np.float32), "sampling_rate": 16000} for n in (800, 640)],
    "video": [{"video": np.full((2, 1, 4, 4), 0.25, np.float32)} for _ in range(2)],
    "tabular": [{"x": 0.5, "colour": "red"}, {"x": -1.0, "colour": "blue"}],
}


def _adapter(modality: str, tiny_dir) -> ModalityAdapter:
    patches = PatchImageAdapter(PatchImageConfig(image_size=4, patch_size=2, channels=1))
    if modality == "text":
        return TextAdapter(TextAdapterConfig(encoder_name_or_path=str(tiny_dir("bert"))))
    if modality == "audio":
        return AudioAdapter(AudioAdapterConfig(encoder_name_or_path=str(tiny_dir("wav2vec2"))))
    if modality == "video":
        return VideoAdapter.from_image_adapter(patches)
    if modality == "tabular":
        return TabularAdapter.from_table(pd.DataFrame.from_records(EXAMPLES["tabular"]))
    return patches


@pytest.mark.parametrize("modality", sorted(EXAMPLES))
def test_collate_gives_what_the_adapter_encodes(modality, tiny_dir):
    adapter = _adapter(modality, tiny_dir)
    assert adapter.modality == modality
    latents = adapter.encode(adapter.prepare_batch(adapter.collate(EXAMPLES[modality]))).latents
    assert latents.shape[0] == 2 and latents.shape[-1] == adapter.latent_dim


def test_every_adapter_names_the_pipeline_output_its_samples_go_to():
    from dataclasses import fields

    from qgfd_diffusion.adapters import ADAPTERS
    from qgfd_diffusion.sample.pipeline import QGFDPipelineOutput

    outputs = {f.name for f in fields(QGFDPipelineOutput)} - {"latents"}
    assert {name: cls.output_field in outputs for name, cls in ADAPTERS.items()} == {
        name: True for name in ADAPTERS
    }
    assert ADAPTERS["patch_image"].output_field == ADAPTERS["image"].output_field == "images"
