"""Which Azure OpenAI meter of the cost export is which: input, cached input or output tokens of a
model, or provisioned (PTU) hours.

Derived from the meter name where it is unambiguous, otherwise taken from the pricing file's `meters`
mapping (which always wins). Azure OpenAI meter names abbreviate freely and differ by deployment type:
"gpt 4.1 Inpt glbl 1M Tokens", "gpt-4o-0513-Inp-regnl Tokens", "gpt 4.1 cchd Inpt DZ 1M Tokens",
"gpt-4o-mini-0718-Outp-glbl Tokens", "Global Provisioned Managed Unit" (names as the Azure retail prices
API and Cost Management show them). A name is read as words (split on anything not a letter, digit or
dot); deployment-type words (glbl, global, DZ, regnl, batch, ...) do not change the kind:

- provisioned: a word starting with "provisioned" (PTU hours; no model needed);
- cached input: "cached" / "cchd" / "cache";
- input: "inp" / "inpt" / "input"; output: "outp" / "outpt" / "output" / "out";
- anything else, or both input and output words: ambiguous, so it must be mapped.

A token meter's model is the model of a deployment on the meter's resource whose name, letters and
digits only, appears in the meter's (longest such name wins: "gpt41mini" over "gpt41"); none, or two
equally long: it must be mapped.
"""

import re
from enum import StrEnum

_WORD = re.compile(r"[a-z0-9.]+")
_CACHED = {"cached", "cchd", "cache"}
_INPUT = {"inp", "inpt", "input"}
_OUTPUT = {"outp", "outpt", "output", "out"}


class MeterKind(StrEnum):
    input = "input"  # prompt tokens
    cached_input = "cached_input"  # prompt tokens served from the prompt cache
    output = "output"  # completion tokens
    provisioned = "provisioned"  # PTU hours


class UnmappedMeterError(ValueError):
    """A meter of a named resource that neither its name nor the pricing file's `meters` explains."""


def derived_kind(meter_name: str) -> MeterKind | None:
    """The meter's kind read from its name, or None when the name does not say it unambiguously."""
    words = _WORD.findall(meter_name.lower())
    if any(word.startswith("provisioned") for word in words):
        return MeterKind.provisioned
    has_input = any(word in _INPUT for word in words)
    has_output = any(word in _OUTPUT for word in words)
    if has_input and has_output:
        return None
    if any(word in _CACHED for word in words) and not has_output:
        return MeterKind.cached_input
    if has_input:
        return MeterKind.input
    if has_output:
        return MeterKind.output
    return None


def _squashed(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def derived_model(meter_name: str, models: set[str]) -> str | None:
    """The one model of `models` the meter name names (the longest match), or None."""
    name = _squashed(meter_name)
    matches = sorted((len(_squashed(model)), model) for model in models if _squashed(model) in name)
    if not matches or (len(matches) > 1 and matches[-1][0] == matches[-2][0]):
        return None
    return matches[-1][1]


def mapping_snippet(meter_name: str, kind: MeterKind | None, model: str | None) -> str:
    """The pricing file lines that map this meter, with what could be derived filled in."""
    kinds = " | ".join(kind.value for kind in MeterKind)
    return (
        f'meters:\n  "{meter_name}":\n    kind: {kind.value if kind else kinds}\n'
        f"    model: {model or '<the model of the deployments it bills>'}  # not needed for provisioned"
    )


def meter_mapping(meters_by_resource: dict[str, set[str]], models_by_resource: dict[str, set[str]], unknown: str):
    """The pricing file's `meters` mapping of every meter an export bills the resources on (resource ids
    lower-cased in both arguments): kind and model as derived from the name (the model among the resource's
    own, else among every resource's: a meter can bill a model the window did not see on that resource),
    `unknown` (a placeholder the pricing validator rejects) where the name does not say or two resources
    read it differently."""
    found: dict[str, dict[str, set]] = {}
    every_model = set().union(*models_by_resource.values()) if models_by_resource else set()
    for resource, names in meters_by_resource.items():
        for name in names:
            kind = derived_kind(name)
            models = models_by_resource.get(resource, set())
            model = None
            if kind != MeterKind.provisioned:
                model = derived_model(name, models) or derived_model(name, every_model)
            entry = found.setdefault(name, {"kind": set(), "model": set()})
            entry["kind"].add(kind.value if kind else unknown)
            entry["model"].add(model or unknown)
    mapping = {}
    for name in sorted(found):
        kinds, models = found[name]["kind"], found[name]["model"]
        kind = kinds.pop() if len(kinds) == 1 else unknown
        mapping[name] = {"kind": kind}
        if kind != MeterKind.provisioned.value:
            mapping[name]["model"] = models.pop() if len(models) == 1 else unknown
    return mapping
