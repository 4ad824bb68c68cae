"""JSON associations in the Roman format: read, write, make from a file list.

An association is a dict::

    {"asn_type": "None", "asn_rule": "DMS_ELPP_Base", "version_id": null,
     "code_version": "...", "degraded_status": "...", "program": "noprogram",
     "constraints": "No constraints", "asn_id": "a3001", "target": "none",
     "asn_pool": "none",
     "products": [{"name": "product", "members": [{"expname": "f.asdf", "exptype": "science"}]}]}

Member paths are stored relative to the directory of the association file and are
resolved against it when read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from romancore import __version__
from romancore.errors import FileFormatError

DEFAULT_RULE = "DMS_ELPP_Base"


class AssociationError(FileFormatError):
    """An association file is missing, unreadable or malformed."""


def asn_from_list(items, product_name: str, *, with_exptype: bool = False,
                  rule: str = DEFAULT_RULE, asn_type: str = "None", asn_id: str = "a3001",
                  target: str = "none", asn_pool: str = "none", program: str = "noprogram") -> dict:
    """Make an association dict from file names.

    Parameters
    ----------
    items : sequence of str, or of (str, exptype) pairs when ``with_exptype``
    product_name : str
        Name of the single product.
    """
    members = []
    for it in items:
        if with_exptype:
            name, exptype = it
        else:
            name, exptype = it, "science"
        members.append({"expname": os.fspath(name), "exptype": str(exptype)})
    return {
        "asn_type": asn_type, "asn_rule": rule, "version_id": None,
        "code_version": __version__,
        "degraded_status": "No known degraded exposures in association.",
        "program": program, "constraints": "No constraints", "asn_id": asn_id,
        "target": target, "asn_pool": asn_pool,
        "products": [{"name": product_name, "members": members}],
    }


def validate_asn(asn, where: str = "association") -> dict:
    """Check the structure; returns *asn* or raises :class:`AssociationError`."""
    if not isinstance(asn, dict):
        raise AssociationError(f"{where}: an association must be a JSON object")
    products = asn.get("products")
    if not isinstance(products, list) or not products:
        raise AssociationError(f"{where}: 'products' must be a non-empty list")
    for i, prod in enumerate(products):
        if not isinstance(prod, dict) or not isinstance(prod.get("members"), list):
            raise AssociationError(f"{where}: products[{i}] needs a 'members' list")
        for j, mem in enumerate(prod["members"]):
            if not isinstance(mem, dict) or not isinstance(mem.get("expname"), str) or not mem["expname"]:
                raise AssociationError(f"{where}: products[{i}].members[{j}] needs an 'expname' string")
            mem.setdefault("exptype", "science")
    return asn


def load_asn(path) -> dict:
    """Read an association file; member ``expname`` values stay as written."""
    path = Path(path)
    try:
        with open(path) as fh:
            asn = json.load(fh)
    except FileNotFoundError:
        raise AssociationError(f"association {path} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise AssociationError(f"association {path} cannot be read: {exc}") from exc
    return validate_asn(asn, str(path))


def member_paths(asn: dict, asn_path=None, *, exptypes=("science",), product: int | None = None) -> list[Path]:
    """Absolute member paths (relative names resolved against the association's directory).

    ``exptypes=None`` keeps every member; ``product`` selects one product (default all).
    """
    base = Path(asn_path).resolve().parent if asn_path else Path.cwd()
    prods = asn["products"] if product is None else [asn["products"][product]]
    out = []
    for prod in prods:
        for mem in prod["members"]:
            if exptypes is not None and str(mem.get("exptype", "science")).lower() not in exptypes:
                continue
            p = Path(mem["expname"])
            out.append(Path(os.path.normpath(p if p.is_absolute() else base / p)))
    return out


def save_asn(asn: dict, path, *, relative: bool = True) -> Path:
    """Write *asn* as JSON; member paths are made relative to the file's directory.

    Absolute paths and paths relative to the current directory are both rewritten
    relative to the association's directory when ``relative`` (names on another
    drive stay absolute).
    """
    path = Path(path)
    validate_asn(asn, str(path))
    out = json.loads(json.dumps(asn))
    base = path.resolve().parent
    if relative:
        for prod in out["products"]:
            for mem in prod["members"]:
                p = Path(mem["expname"])
                absolute = p if p.is_absolute() else Path.cwd() / p
                try:
                    mem["expname"] = os.path.relpath(absolute.resolve(), base)
                except ValueError:
                    mem["expname"] = str(absolute)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(out, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def is_asn_path(obj) -> bool:
    return isinstance(obj, (str, os.PathLike)) and str(obj).lower().endswith(".json")
