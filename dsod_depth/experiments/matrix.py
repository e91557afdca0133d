"""Sweep matrices: a strict YAML description of dataset × modality × init × seed runs.

A matrix file (shipped ones: ``experiments/matrices/*.yaml``)::

    output: runs/sweeps/synthrooms            # run folders: <output>/<dataset>/<modality>_<init>_s<seed>
    config: experiments/configs/{dataset}/{modality}_{init}.yaml   # template, or one base config
    datasets:                                 # name → prepared store, or name → {store, set}
      synthrooms: runs/data/synthrooms
    modalities: [rgb, depth, hha, rgb_hha]    # entries: a modality, or {modality, set}
    inits: [scratch, imagenet]                # scratch | imagenet | pretrained:PATH | transfer:RUN_DIR,
                                              # or {init, config, set, modalities}
    seeds: [0, 1, 2]
    set: {train.iters: 300}                   # optional: overrides for every run (mapping or key=value list)

The template's ``{modality}`` is the file-name form (``rgb_hha``) and ``{init}`` the init's ``config``
value: the init itself for ``scratch``/``imagenet``, ``scratch`` for ``pretrained:PATH`` and
``transfer:RUN_DIR`` (a kit checkpoint transfers into the architecture of the scratch config; give
``config:`` to choose another).

The path of a ``pretrained:`` or ``transfer:`` init may use ``{dataset}``, ``{modality}`` (file-name
form) and ``{seed}``, filled in per cell: supervision transfer has one student per modality and seed,
e.g. ``transfer:runs/transfer/{dataset}/{modality}_s{seed}``. An init's ``modalities:`` list restricts
it to those modalities (transfer has no RGB student: ``modalities: [depth, hha, rgb_hha]``).

Every run's config is the template file, then the matrix ``set``, then the dataset's,
modality's and init's ``set``, then the cell itself: ``data.store``, ``data.modality``,
``model.init``, ``train.seed`` and ``name`` — which is why ``set`` may not name those keys.
Relative paths are relative to the working directory, as in configs. Every config is loaded and
checked when the matrix is expanded, before any run starts.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dsod_depth.config import ExperimentConfig, load_config
from dsod_depth.engine.init import parse_init
from dsod_depth.errors import KitError
from dsod_depth.experiments.naming import (
    canonical_modality,
    check_name,
    init_label,
    init_token,
    modality_token,
)

__all__ = ["Matrix", "DatasetSpec", "ModalitySpec", "InitSpec", "RunSpec", "load_matrix", "matrix_from_dict"]

_TOP_KEYS = {"name", "output", "config", "datasets", "modalities", "inits", "seeds", "set"}
_REQUIRED = ("output", "config", "datasets", "modalities", "inits", "seeds")
_PLACEHOLDERS = {"dataset", "modality", "init"}
_INIT_PLACEHOLDERS = {"dataset", "modality", "seed"}
# Keys the sweep sets for each cell; an override of them would be silently replaced.
_OWNED = ("name", "data.store", "data.modality", "model.init", "train.seed")


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # folder name of the dataset's runs and the template's {dataset}
    store: str  # prepared store folder (data.store)
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModalitySpec:
    name: str  # canonical modality, groups joined by '+'
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class InitSpec:
    init: str  # model.init: scratch | imagenet | pretrained:PATH | transfer:RUN_DIR (may hold placeholders)
    config: str  # value of {init} in the config template
    overrides: tuple[str, ...] = ()
    modalities: tuple[str, ...] | None = None  # canonical modalities it applies to; None: all

    def resolve(self, dataset: str, modality: str, seed: int) -> str:
        """The init string of one cell (placeholders of the module docstring filled in)."""
        return self.init.format(dataset=dataset, modality=modality_token(modality), seed=seed)

    @property
    def label(self) -> str:
        return init_label(self.init)


@dataclass(frozen=True)
class RunSpec:
    """One cell of the matrix, its resolved config and its run folder."""

    dataset: str
    modality: str  # canonical, e.g. rgb+hha
    init: str  # label, e.g. scratch, imagenet, pretrained:rgb
    seed: int
    config_path: Path
    overrides: tuple[str, ...]
    config: ExperimentConfig
    run_dir: Path

    @property
    def name(self) -> str:
        """``<dataset>/<modality>_<init>_s<seed>``, the run folder relative to the output root."""
        return f"{self.dataset}/{self.run_dir.name}"


@dataclass(frozen=True)
class Matrix:
    source: str  # where it was read from, for messages
    name: str
    output: Path
    config: str  # template with {dataset}, {modality}, {init}
    datasets: tuple[DatasetSpec, ...]
    modalities: tuple[ModalitySpec, ...]
    inits: tuple[InitSpec, ...]
    seeds: tuple[int, ...]
    overrides: tuple[str, ...] = ()

    def expand(self) -> list[RunSpec]:
        """Every run, ordered dataset → seed → modality → init (a full first seed of the comparison
        exists before the second starts). Loads and checks each run's config."""
        specs: list[RunSpec] = []
        seen: dict[Path, str] = {}
        for dataset in self.datasets:
            for seed in self.seeds:
                for modality in self.modalities:
                    for init in self.inits:
                        if init.modalities is not None and modality.name not in init.modalities:
                            continue
                        spec = self._cell(dataset, modality, init, seed)
                        cell = f"({dataset.name}, {modality.name}, {init.init}, seed {seed})"
                        if spec.run_dir in seen:
                            raise KitError(
                                f"{self.source}: runs {seen[spec.run_dir]} and {cell} would share the folder "
                                f"{spec.run_dir}; pretrained inits need checkpoints with distinct names"
                            )
                        seen[spec.run_dir] = cell
                        specs.append(spec)
        return specs

    def _cell(self, dataset: DatasetSpec, modality: ModalitySpec, init: InitSpec, seed: int) -> RunSpec:
        token = modality_token(modality.name)
        try:
            path = Path(self.config.format(dataset=dataset.name, modality=token, init=init.config))
        except (KeyError, IndexError, ValueError) as err:  # checked at load; kept for hand-built matrices
            raise KitError(f"{self.source}: config template {self.config!r} is malformed ({err})") from None
        run_dir = self.output / dataset.name / f"{token}_{init_token(init.label)}_s{seed}"
        cell = [
            f"name={json.dumps(f'{dataset.name}_{token}_{init_token(init.label)}_s{seed}')}",
            f"data.store={json.dumps(dataset.store)}",
            f"data.modality={json.dumps(modality.name)}",
            f"model.init={json.dumps(init.resolve(dataset.name, modality.name, seed))}",
            f"train.seed={seed}",
        ]
        overrides = (*self.overrides, *dataset.overrides, *modality.overrides, *init.overrides, *cell)
        if not path.is_file():
            raise KitError(
                f"{self.source}: config {path} (template {self.config!r} for dataset {dataset.name}, "
                f"modality {token}, init {init.config}) not found; fix 'config' or add the file"
            )
        config = load_config(path, list(overrides))
        return RunSpec(dataset.name, modality.name, init.label, seed, path, overrides, config, run_dir)


# --------------------------------------------------------------------------- parsing


def load_matrix(path: str | Path) -> Matrix:
    """Read and check a matrix YAML file (unknown keys are refused with their name)."""
    path = Path(path)
    if not path.is_file():
        raise KitError(
            f"matrix file {path} not found; pass a YAML matrix such as experiments/matrices/synthrooms.yaml"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise KitError(f"{path}: not UTF-8 text; a matrix must be a YAML file") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise KitError(f"{path}:{line} is not valid YAML; fix the file") from None
    return matrix_from_dict(data, source=str(path))


def matrix_from_dict(data: Any, *, source: str = "matrix") -> Matrix:
    """Build and check a :class:`Matrix` from plain containers (the parsed YAML, or built in code)."""
    mapping = _mapping(data, "the top level", source)
    _check_keys(mapping, _TOP_KEYS, "", source)
    for key in _REQUIRED:
        if key not in mapping:
            raise KitError(f"{source}: missing key '{key}' (a matrix needs: {', '.join(_REQUIRED)})")
    template = _string(mapping["config"], "config", source)
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise KitError(f"{source}: config template {template!r} is malformed ({err})") from None
    if fields - _PLACEHOLDERS:
        raise KitError(
            f"{source}: config template {template!r} uses unknown placeholder(s) "
            f"{', '.join(sorted(fields - _PLACEHOLDERS))}; the known ones are "
            "{dataset}, {modality}, {init}"
        )
    matrix = Matrix(
        source=source,
        name=_string(mapping.get("name", Path(source).stem), "name", source),
        output=Path(_string(mapping["output"], "output", source)),
        config=template,
        datasets=_datasets(mapping["datasets"], source),
        modalities=_unique(_modalities(mapping["modalities"], source), "modalities", source),
        inits=_unique(_inits(mapping["inits"], source), "inits", source),
        seeds=_seeds(mapping["seeds"], source),
        overrides=_overrides(mapping.get("set", []), "set", source),
    )
    return matrix


def _mapping(value: Any, where: str, source: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KitError(f"{source}: {where} must be a mapping, got {value!r}")
    return value


def _check_keys(mapping: dict[str, Any], known: set[str], where: str, source: str) -> None:
    for key in mapping:
        if key not in known:
            path = f"{where}.{key}" if where else str(key)
            raise KitError(f"{source}: unknown key '{path}' (known keys here: {', '.join(sorted(known))})")


def _string(value: Any, where: str, source: str) -> str:
    if not isinstance(value, str) or not value:
        raise KitError(f"{source}: {where} must be a non-empty string, got {value!r}")
    return value


def _list(value: Any, where: str, source: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise KitError(f"{source}: {where} must be a non-empty list, got {value!r}")
    return value


def _overrides(value: Any, where: str, source: str) -> tuple[str, ...]:
    """``set`` as a list of ``key=value`` strings or a mapping ``{dotted.key: value}``."""
    if isinstance(value, dict):
        # JSON is valid YAML flow syntax, so load_config's override parser reads the value back exactly.
        items = [f"{key}={json.dumps(item)}" for key, item in value.items()]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = list(value)
    else:
        raise KitError(
            f"{source}: {where} must be a mapping of config keys or a list of key=value, got {value!r}"
        )
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise KitError(f"{source}: {where} entry {item!r} must be key=value, e.g. train.iters=300")
        if key.strip() in _OWNED:
            raise KitError(
                f"{source}: {where} may not set '{key.strip()}': the sweep sets it for each run "
                "(datasets give data.store, modalities data.modality, inits model.init, seeds train.seed)"
            )
    return tuple(item.strip() for item in items)


def _datasets(value: Any, source: str) -> tuple[DatasetSpec, ...]:
    mapping = _mapping(value, "datasets", source)
    if not mapping:
        raise KitError(f"{source}: datasets must name at least one dataset and its prepared store")
    specs = []
    for name, entry in mapping.items():
        check_name(name, "dataset name", source)
        where = f"datasets.{name}"
        if isinstance(entry, dict):
            _check_keys(entry, {"store", "set"}, where, source)
            if "store" not in entry:
                raise KitError(f"{source}: missing key '{where}.store' (the prepared store folder)")
            store, overrides = entry["store"], _overrides(entry.get("set", []), f"{where}.set", source)
        else:
            store, overrides = entry, ()
        specs.append(DatasetSpec(name, _string(store, f"{where}.store", source), overrides))
    return tuple(specs)


def _modalities(value: Any, source: str) -> list[ModalitySpec]:
    specs = []
    for i, entry in enumerate(_list(value, "modalities", source)):
        where = f"modalities[{i}]"
        overrides: tuple[str, ...] = ()
        if isinstance(entry, dict):
            _check_keys(entry, {"modality", "set"}, where, source)
            if "modality" not in entry:
                raise KitError(f"{source}: missing key '{where}.modality'")
            overrides = _overrides(entry.get("set", []), f"{where}.set", source)
            entry = entry["modality"]
        name = canonical_modality(_string(entry, where, source))
        check_name(modality_token(name), where, source)
        specs.append(ModalitySpec(name, overrides))
    return specs


def _inits(value: Any, source: str) -> list[InitSpec]:
    specs = []
    for i, entry in enumerate(_list(value, "inits", source)):
        where = f"inits[{i}]"
        config = overrides = modalities = None
        if isinstance(entry, dict):
            _check_keys(entry, {"init", "config", "set", "modalities"}, where, source)
            if "init" not in entry:
                raise KitError(
                    f"{source}: missing key '{where}.init' (scratch, imagenet, pretrained:PATH or "
                    "transfer:RUN_DIR)"
                )
            if "modalities" in entry:
                listed = _list(entry["modalities"], f"{where}.modalities", source)
                modalities = tuple(
                    canonical_modality(_string(m, f"{where}.modalities", source)) for m in listed
                )
            if "config" in entry:
                config = _string(entry["config"], f"{where}.config", source)
                check_name(config, f"{where}.config", source)
            overrides = _overrides(entry.get("set", []), f"{where}.set", source)
            entry = entry["init"]
        init = _string(entry, where, source)
        kind = parse_init(init, key=f"{source}: {where}").kind  # the one rule for init strings
        _check_init_placeholders(init, where, source)
        default_config = init if kind in ("scratch", "imagenet") else "scratch"
        specs.append(InitSpec(init, config or default_config, overrides or (), modalities))
    return specs


def _check_init_placeholders(init: str, where: str, source: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(init) if name is not None}
    except ValueError as err:
        raise KitError(f"{source}: {where} {init!r} is malformed ({err})") from None
    unknown = ", ".join(sorted(names - _INIT_PLACEHOLDERS))
    if unknown:
        raise KitError(
            f"{source}: {where} {init!r} uses unknown placeholder(s) {unknown}"
            "; an init path may use {dataset}, {modality} and {seed}"
        )


def _seeds(value: Any, source: str) -> tuple[int, ...]:
    seeds = _list(value, "seeds", source)
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise KitError(f"{source}: seeds must be non-negative integers, got {seed!r}")
    if len(set(seeds)) != len(seeds):
        raise KitError(f"{source}: seeds {seeds} repeat a value; list each seed once")
    return tuple(seeds)


def _unique(specs: list[Any], where: str, source: str) -> tuple[Any, ...]:
    names = [spec.name if isinstance(spec, ModalitySpec) else spec.init for spec in specs]
    for name in names:
        if names.count(name) > 1:
            raise KitError(f"{source}: {where} lists {name!r} twice; list each once")
    return tuple(specs)
