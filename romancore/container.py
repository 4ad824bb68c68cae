"""ModelContainer: an ordered set of models, lazily opened, optionally kept on disk.

Members are file paths (opened on access) or models.  With ``on_disk=True`` at most
one member is resident: fetching a member first writes the resident one (which a
step may have changed) to a temporary file in ``tmpdir`` and drops it.  Input files
are never overwritten.

Grouping by exposure uses, in order: an association member's ``group_id``, else
``meta.observation.{program, observation, visit, visit_file_group,
visit_file_sequence, visit_file_activity, exposure}`` joined with ``_``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from romancore.datamodels.base import get_meta
from romancore.errors import NoScienceDataError, RomancoreError

from .associations import is_asn_path, load_asn, member_paths

log = logging.getLogger(__name__)

GROUP_KEYS = ("program", "observation", "visit", "visit_file_group", "visit_file_sequence",
              "visit_file_activity", "exposure")


def _open(path):
    import romancore.datamodels as dm

    return dm.open(path)


def _is_model(obj) -> bool:
    return hasattr(obj, "meta") and hasattr(obj, "save")


class _Member:
    __slots__ = ("path", "model", "group_id", "exptype", "temp", "filename")

    def __init__(self, path=None, model=None, group_id=None, exptype="science"):
        self.path = Path(path) if path is not None else None
        self.model = model
        self.group_id = group_id
        self.exptype = exptype
        self.temp = False
        self.filename = None


class ModelContainer:
    """List-like container of models.

    Parameters
    ----------
    init : None, association path (``.json``), list of paths and/or models, or ModelContainer
    on_disk : bool
        Keep at most one member in memory (others live in files).
    asn_exptypes : sequence of str
        Member exptypes taken from an association (default ``("science",)``).
    tmpdir : path, optional
        Where evicted members are written (default: a new temporary directory).
    """

    def __init__(self, init=None, *, on_disk: bool = False, asn_exptypes=("science",), tmpdir=None):
        self.on_disk = bool(on_disk)
        self._members: list[_Member] = []
        self._resident: int | None = None
        self._tmpdir = Path(tmpdir) if tmpdir else None
        self._own_tmp = False
        self._gen = 0
        self.asn_table: dict | None = None
        self.asn_table_name: str | None = None
        self.asn_file_path: Path | None = None
        if init is None:
            return
        if isinstance(init, ModelContainer):
            for m in init._members:
                self._members.append(_Member(m.path, m.model, m.group_id, m.exptype))
            self.asn_table = init.asn_table
            self.asn_table_name = init.asn_table_name
            return
        if is_asn_path(init):
            self.from_asn(load_asn(init), init, exptypes=asn_exptypes)
            return
        if isinstance(init, (str, os.PathLike)) or _is_model(init):
            init = [init]
        for item in init:
            self.append(item)
        if self.on_disk:
            self._spill_all()

    # ------------------------------------------------------------ construction
    @staticmethod
    def read_asn(filepath) -> dict:
        """Load and check an association file."""
        return load_asn(filepath)

    def from_asn(self, asn_data: dict, asn_file_path=None, *, exptypes=("science",)):
        """Fill the container from an association (member paths relative to its file)."""
        self.asn_table = asn_data
        self.asn_file_path = Path(asn_file_path).resolve() if asn_file_path else None
        self.asn_table_name = Path(asn_file_path).name if asn_file_path else None
        base_paths = member_paths(asn_data, asn_file_path, exptypes=exptypes)
        members = [m for p in asn_data["products"] for m in p["members"]
                   if exptypes is None or str(m.get("exptype", "science")).lower() in exptypes]
        for path, mem in zip(base_paths, members, strict=True):
            self._members.append(_Member(path, None, mem.get("group_id"), mem.get("exptype", "science")))
        if not self._members:
            raise NoScienceDataError(
                f"association {asn_file_path or ''} has no members of type {', '.join(exptypes or ())}"
            )
        return self

    def append(self, item):
        if _is_model(item):
            self._members.append(_Member(None, item))
        elif isinstance(item, (str, os.PathLike)):
            self._members.append(_Member(item))
        else:
            raise RomancoreError(f"a ModelContainer holds models or paths, not {type(item).__name__}")
        if self.on_disk and len(self._members) > 1:
            self._spill_all()

    def extend(self, items):
        for it in items:
            self.append(it)

    def insert(self, index, item):
        self.append(item)
        self._members.insert(index, self._members.pop())
        self._resident = None if self._resident is None else self._find_resident()

    def _find_resident(self):
        for i, m in enumerate(self._members):
            if m.model is not None:
                return i
        return None

    # ------------------------------------------------------------ on-disk handling
    def _temp_dir(self) -> Path:
        if self._tmpdir is None:
            self._tmpdir = Path(tempfile.mkdtemp(prefix="romancore_container_"))
            self._own_tmp = True
        self._tmpdir.mkdir(parents=True, exist_ok=True)
        return self._tmpdir

    def _evict(self, i: int):
        mem = self._members[i]
        if mem.model is None:
            return
        self._gen += 1
        mem.filename = get_meta(mem.model, "filename")
        name = os.path.basename(str(mem.filename or f"member{i}.asdf"))
        path = self._temp_dir() / f"{i:04d}_{self._gen}_{name}"
        if not path.suffix:
            path = path.with_suffix(".asdf")
        mem.model.save(path)
        close = getattr(mem.model, "close", None)
        if close is not None:
            close()
        if mem.temp and mem.path is not None and mem.path != path:
            try:
                mem.path.unlink()
            except OSError:
                pass
        mem.path, mem.model, mem.temp = path, None, True

    def _spill_all(self):
        for i, m in enumerate(self._members):
            if m.model is not None:
                self._evict(i)
        self._resident = None

    @property
    def n_resident(self) -> int:
        """Number of members currently held in memory."""
        return sum(1 for m in self._members if m.model is not None)

    # ------------------------------------------------------------ list protocol
    def __len__(self):
        return len(self._members)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        mem = self._members[index]
        if mem.model is None:
            if self.on_disk and self._resident is not None and self._resident != index:
                self._evict(self._resident)
            mem.model = _open(mem.path)
            if mem.temp and mem.filename:
                # the temporary file name must not leak into product names
                try:
                    mem.model.meta.filename = mem.filename
                except Exception:  # schema without meta.filename
                    pass
            if self.on_disk:
                self._resident = index
        elif self.on_disk and self._resident is not None and self._resident != index:
            self._evict(self._resident)
            self._resident = index
        return mem.model

    def __setitem__(self, index, model):
        if not _is_model(model):
            raise RomancoreError(f"a ModelContainer holds models, not {type(model).__name__}")
        if index < 0:
            index += len(self)
        if self.on_disk and self._resident is not None and self._resident != index:
            self._evict(self._resident)
        self._members[index].model = model
        if self.on_disk:
            self._resident = index

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]
        if self.on_disk:
            self._spill_all()

    def paths(self) -> list[Path | None]:
        """File of each member (None for in-memory models never written)."""
        return [m.path for m in self._members]

    # ------------------------------------------------------------ grouping
    def _group_id(self, i: int) -> str:
        mem = self._members[i]
        if mem.group_id:
            return str(mem.group_id)
        model = mem.model if mem.model is not None else _open(mem.path)
        try:
            gid = get_meta(model, "group_id")
            if not gid:
                vals = [get_meta(model, f"observation.{k}") for k in GROUP_KEYS]
                gid = "roman" + "_".join(str(v) for v in vals)
        finally:
            if mem.model is None:
                close = getattr(model, "close", None)
                if close is not None:
                    close()
        mem.group_id = gid
        return gid

    @property
    def group_indices(self) -> dict[str, list[int]]:
        """``{group_id: [member indices]}`` in first-seen order (reads metadata only)."""
        out: dict[str, list[int]] = {}
        for i in range(len(self)):
            out.setdefault(self._group_id(i), []).append(i)
        return out

    @property
    def models_grouped(self) -> list[list]:
        """Members grouped by exposure (loads every member; not for on_disk use)."""
        return [[self[i] for i in idx] for idx in self.group_indices.values()]

    # ------------------------------------------------------------ misc
    def get_crds_parameters(self) -> dict:
        """CRDS parameters of the first member."""
        if not self._members:
            raise NoScienceDataError("empty ModelContainer has no CRDS parameters")
        return self[0].get_crds_parameters()

    @property
    def crds_observatory(self) -> str:
        return "roman"

    def save(self, path=None, dir_path=None) -> list[Path]:
        """Write every member; returns the paths.

        ``path`` None: each member's ``meta.filename``; a string: used as a root with
        ``_<index>`` appended; a callable ``f(filename, idx) -> name``.
        """
        out = []
        directory = Path(dir_path) if dir_path else Path(".")
        directory.mkdir(parents=True, exist_ok=True)
        for i, model in enumerate(self):
            filename = str(get_meta(model, "filename") or f"member{i}.asdf")
            if path is None:
                name = os.path.basename(filename)
            elif callable(path):
                name = path(filename, i)
            else:
                root, ext = os.path.splitext(os.fspath(path))
                name = f"{root}_{i}{ext or '.asdf'}"
            out.append(Path(model.save(directory / name)))
        return out

    def close(self):
        for m in self._members:
            if m.model is not None and m.path is not None:
                close = getattr(m.model, "close", None)
                if close is not None:
                    close()
        if self._own_tmp and self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
            self._own_tmp = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<ModelContainer {len(self)} members{' on disk' if self.on_disk else ''}>"


def open_input(input, *, on_disk: bool = False):
    """A model (single path or model) or a ModelContainer (list, association, container)."""
    if isinstance(input, ModelContainer) or _is_model(input):
        return input
    if is_asn_path(input):
        return ModelContainer(input, on_disk=on_disk)
    if isinstance(input, (str, os.PathLike)):
        return _open(input)
    if isinstance(input, (list, tuple)):
        if not input:
            raise NoScienceDataError("empty input list: nothing to process")
        return ModelContainer(list(input), on_disk=on_disk)
    raise RomancoreError(f"cannot use a {type(input).__name__} as pipeline input")
