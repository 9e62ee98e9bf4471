"""Where a proposal-based method's masks come from: parts of kind ``proposals`` (`harness.parts`; ``harness list
parts``), selected by the option ``proposal_source`` (DeOP's family and SimBaseline).

``maskformer`` (the only one in tree) is the class-agnostic MaskFormer (METHOD_SPEC 1) that stage 2 trains on the
seen classes; its option ``proposals`` is ``{preset: smoke, <MaskFormerConfig field>: value, ...}``, checked when a
method is resolved (``run --dry-run``, before any stage trains): an unknown key, a wrong type or an inconsistent
network (hidden not divisible by nheads ...) is an error naming the key, not a failure after the prompt stage has
trained. A source's ``build(embed_dim)`` returns the network stage 2 trains and the proposal pipelines run (the
`MaskFormer` interface: ``cfg``, ``forward(x)["pred_masks"]``, ``void_embedding``, ``weights_info``), and
``identity()`` is what the proposal stage's cache key holds of it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

from harness.errors import ConfigError
from harness.parts import Part, option, part_table, register_part

from .proposals.config import MaskFormerConfig

if TYPE_CHECKING:  # the network is heavy (timm); a spec names its source without importing it
    from .proposals import MaskFormer

PROPOSAL_SOURCES = part_table("proposals")  # the registered proposal sources (harness list parts)

PRESETS = ("smoke",)


def _type_ok(annotation: str, value: Any) -> bool:
    if value is None:
        return "None" in annotation
    if annotation.startswith("tuple"):
        return isinstance(value, list | tuple)
    if annotation.startswith("bool"):
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if annotation.startswith("int"):
        return isinstance(value, int)
    if annotation.startswith("float"):
        return isinstance(value, int | float)
    if annotation.startswith("str"):
        return isinstance(value, str)
    return True


def proposal_config(options: Mapping[str, Any]) -> MaskFormerConfig:
    """The MaskFormerConfig of a ``proposals`` option, or a ConfigError that names what is wrong."""
    if not isinstance(options, Mapping):
        raise ConfigError(f"option proposals must be a mapping (e.g. {{preset: smoke}}), got {options!r}.")
    overrides = dict(options)
    preset = overrides.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"option proposals.preset={preset!r} is not one of {', '.join(PRESETS)} (or absent).")
    known = {f.name: str(f.type) for f in fields(MaskFormerConfig)}
    for key, value in overrides.items():
        if key not in known:
            raise ConfigError(f"option proposals: unknown key {key!r}; known: preset, {', '.join(known)}.")
        if not _type_ok(known[key], value):
            raise ConfigError(f"option proposals.{key}={value!r} must be {known[key]}.")
    return MaskFormerConfig.smoke(**overrides) if preset == "smoke" else MaskFormerConfig(**overrides)


@dataclass(frozen=True)
class ProposalSource(Part, ABC):
    """The base of every proposal source (see the module docstring for what ``build`` returns)."""

    kind: ClassVar[str] = "proposals"

    @abstractmethod
    def build(self, embed_dim: int) -> MaskFormer:
        """The proposal network, its class embeddings in CLIP's joint space of width ``embed_dim``."""

    def identity(self) -> dict[str, Any]:
        """What the proposal stage's cache key holds of this source (with the stage's data and schedule)."""
        return {"source": self.name, **self.options()}


@register_part
@dataclass(frozen=True)
class MaskFormerProposals(ProposalSource):
    name: ClassVar[str] = "maskformer"
    description: ClassVar[str] = ("the class-agnostic MaskFormer (METHOD_SPEC 1), trained in stage 2 on the seen "
                                  "classes")
    proposals: Mapping[str, Any] = option({}, "MaskFormerConfig overrides, e.g. {preset: smoke, backbone: "
                                          "resnet10t}")

    def __post_init__(self) -> None:
        super().__post_init__()
        proposal_config(self.proposals)  # nested keys too, before any stage trains

    def build(self, embed_dim: int) -> MaskFormer:
        from .proposals import MaskFormer

        cfg = proposal_config(self.proposals)
        if cfg.embed_dim != embed_dim:  # the class embedding lives in CLIP's joint space
            cfg = replace(cfg, embed_dim=embed_dim)
        return MaskFormer(cfg)

    def identity(self) -> dict[str, Any]:
        return {"maskformer": dict(self.proposals)}  # the key's form before proposal sources were parts
