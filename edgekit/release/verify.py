"""edgekit verify: a bundle (folder or .zip) against its manifest: the schema, every file's size and sha256,
no file the manifest does not list, no path that leaves the bundle."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

from edgekit.errors import ModelLoadError, UsageError
from edgekit.release.manifest import MANIFEST_FILE, Manifest, parse_manifest, safe_relative


def verify(bundle: str | Path) -> tuple[Manifest | None, list[str]]:
    """(the manifest, the problems found); no problems means every file is as the manifest says."""
    bundle = Path(bundle)
    if not bundle.exists():
        raise UsageError(f"The bundle {bundle} does not exist.")
    if bundle.is_dir():
        return _check(_folder_reader(bundle), str(bundle))
    if bundle.is_file() and zipfile.is_zipfile(bundle):
        with zipfile.ZipFile(bundle) as z:
            return _check(_zip_reader(z), str(bundle))
    raise UsageError(f"{bundle} is not a bundle: give the bundle folder (with {MANIFEST_FILE}) or its .zip.")


Reader = tuple[list[str], Callable[[str], bytes]]  # (every file's path inside the bundle, read one)


def _folder_reader(folder: Path) -> Reader:
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    return names, lambda name: (folder / name).read_bytes()


def _zip_reader(z: zipfile.ZipFile) -> Reader:
    """Entries under the archive's one top folder, as paths inside the bundle."""
    entries = [i.filename for i in z.infolist() if not i.is_dir()]
    roots = {e.split("/")[0] for e in entries}
    if len(roots) != 1 or not all("/" in e for e in entries):
        raise ModelLoadError("The archive is not one bundle folder: it must hold exactly one top folder.")
    root = roots.pop()
    return sorted(e[len(root) + 1 :] for e in entries), lambda name: z.read(f"{root}/{name}")


def _check(reader: Reader, where: str) -> tuple[Manifest | None, list[str]]:
    names, read = reader
    problems = []
    for name in names:  # a zip entry like `root/../../x` would unpack outside the bundle
        try:
            safe_relative(name)
        except ValueError as e:
            problems.append(f"{name}: {e}")
    if MANIFEST_FILE not in names:
        return None, [*problems, f"{where} has no {MANIFEST_FILE}"]
    try:
        manifest = parse_manifest(json.loads(read(MANIFEST_FILE)), f"{where}/{MANIFEST_FILE}")
    except ValueError as e:
        return None, [*problems, f"{MANIFEST_FILE} is not JSON: {e}"]
    except ModelLoadError as e:
        return None, [*problems, e.message]
    listed = {f.path for f in manifest.files}
    for entry in manifest.files:
        if entry.path not in names:
            problems.append(f"{entry.path}: listed in the manifest but missing")
            continue
        data = read(entry.path)
        if len(data) != entry.size_bytes:
            problems.append(f"{entry.path}: {len(data)} bytes, the manifest says {entry.size_bytes} (tampered or cut)")
        elif hashlib.sha256(data).hexdigest() != entry.sha256:
            problems.append(f"{entry.path}: sha256 differs from the manifest (tampered or corrupted)")
    problems += [f"{name}: not listed in the manifest" for name in names if name not in listed | {MANIFEST_FILE}]
    for model in manifest.models:  # a model's part is a listed file, or a folder of listed files (a .genai model)
        problems += [f"{part}: a file of model {model.file} that the manifest does not list"
                     for part in model.files
                     if part not in listed and not any(f.startswith(f"{part}/") for f in listed)]  # fmt: skip
    if manifest.labels and manifest.labels not in listed:
        problems.append(f"{manifest.labels}: the labels file is not listed")
    return manifest, problems
