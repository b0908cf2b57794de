"""The released SMARTIES weights on the Hugging Face Hub, by name, through ``huggingface_hub``.

One table (:data:`HUB_WEIGHTS`) lists every released file: repository, file name, architecture,
task and head. A name is spelled ``<repo id>[@<revision>][/<file stem>]``, optionally behind
``hf://`` (the spelling of ``huggingface_hub``'s ``HfFileSystem``)::

    gsumbul/SMARTIES-v1-ViT-B                                   # the repo's one file
    gsumbul/SMARTIES-v1-ViT-L@<commit or tag>                   # a pinned revision
    gsumbul/SMARTIES-v1-finetuned-models/smarties-v1-vitb-eurosat-finetune
    hf://gsumbul/SMARTIES-v1-finetuned-models/smarties-v1-vitb-eurosat-finetune.safetensors

Files are fetched with :func:`huggingface_hub.hf_hub_download`, so its cache (``HF_HUB_CACHE`` /
``HF_HOME``, or ``cache_dir=``), ``revision=`` and offline mode (``HF_HUB_OFFLINE=1``: served
from the cache, never the network) apply as for any Hub model. With ``hf://`` and a full file
name (``….safetensors``) any repository works (e.g. your own fine-tuned upload); bare names must
be in the table, so a typo is an error listing the known names, not a download attempt.

The architecture is read from each file's tensor shapes (width from ``cls_token``, depth from
the block count, patch size from the projection layers; heads ``D / 64``: 12 for ViT-B, 16 for
ViT-L), not from this table, whose ``architecture`` column documents the release.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from smartiesviz._version import __version__
from smartiesviz.models.state_dict import CheckpointError

__all__ = [
    "HubWeights",
    "HubName",
    "HUB_WEIGHTS",
    "HUB_PREFIX",
    "known_names",
    "parse_hub_name",
    "hub_download",
    "check_blob_sha256",
    "task_head_note",
]

HUB_PREFIX = "hf://"
_SUFFIX = ".safetensors"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class HubWeights:
    """One released file.

    Attributes:
        repo_id: Hub repository (``"gsumbul/SMARTIES-v1-ViT-B"``).
        filename: file in the repository (``"smarties-v1-vitb.safetensors"``).
        architecture: the release's encoder (``"vit_base_patch16"``, ``"vit_large_patch16"``).
        task: ``"pretraining"`` or the dataset it was trained for.
        head: ``"none"`` (MAE pretraining file, decoder included), ``"finetune"``
            (``head`` = ``Linear``), ``"linprobe"`` (``head.0`` BatchNorm, ``head.1`` Linear) or
            ``"segmentation"`` (``head.0`` 1×1 ``Conv2d``).
        num_classes: the head's outputs (0 without a head).
    """

    repo_id: str
    filename: str
    architecture: str
    task: str
    head: str = "none"
    num_classes: int = 0

    @property
    def name(self) -> str:
        """The documented spelling: the repo id, plus the file stem in a multi-file repo."""
        if sum(w.repo_id == self.repo_id for w in HUB_WEIGHTS) == 1:
            return self.repo_id
        return f"{self.repo_id}/{self.filename.removesuffix(_SUFFIX)}"


_BASE, _LARGE = "vit_base_patch16", "vit_large_patch16"
_TUNED = "gsumbul/SMARTIES-v1-finetuned-models"
_ARCH = {"vitb": _BASE, "vitl": _LARGE}
# (stem after "smarties-v1-<size>-", task, head, classes, sizes released)
_TASKS = (
    ("bigearthnets2-finetune", "BigEarthNet S2 (multi-label)", "finetune", 19, "vitb vitl"),
    ("bigearthnets1-linprobe", "BigEarthNet S1 (multi-label)", "linprobe", 19, "vitb vitl"),
    ("bigearthnetmm-linprobe", "BigEarthNet S1+S2 (multi-label)", "linprobe", 19, "vitb vitl"),
    ("eurosat-finetune", "EuroSAT", "finetune", 10, "vitb vitl"),
    ("eurosat-linprobe", "EuroSAT", "linprobe", 10, "vitb vitl"),
    ("resisc45-finetune", "RESISC-45", "finetune", 45, "vitl"),
    ("dfc2020-linprobe", "DFC2020 (segmentation)", "segmentation", 8, "vitb"),
)

#: Every released file (``../shared/reference/SMARTIES-facts.md``, "Released task files").
HUB_WEIGHTS: tuple[HubWeights, ...] = (
    HubWeights("gsumbul/SMARTIES-v1-ViT-B", "smarties-v1-vitb.safetensors", _BASE, "pretraining"),
    HubWeights("gsumbul/SMARTIES-v1-ViT-L", "smarties-v1-vitl.safetensors", _LARGE, "pretraining"),
    *(
        HubWeights(_TUNED, f"smarties-v1-{size}-{stem}{_SUFFIX}", _ARCH[size], task, head, classes)
        for size in ("vitb", "vitl")
        for stem, task, head, classes, sizes in _TASKS
        if size in sizes.split()
    ),
)


@dataclass(frozen=True)
class HubName:
    """A parsed Hub name: what to download.

    Attributes:
        repo_id: repository.
        filename: file in it.
        revision: branch, tag or commit (None: the default branch).
        weights: the table's entry, or None for an explicit ``hf://`` file outside the table.
    """

    repo_id: str
    filename: str
    revision: str | None
    weights: HubWeights | None


def known_names() -> list[str]:
    """The documented names of :data:`HUB_WEIGHTS`, in table order."""
    return [w.name for w in HUB_WEIGHTS]


def _unknown(name: str, why: str) -> FileNotFoundError:
    names = "\n  ".join(known_names())
    return FileNotFoundError(
        f"checkpoint {name!r} does not exist as a local file or folder and is not a known "
        f"Hugging Face Hub name ({why}). Pass a .safetensors file, a training run folder, 'demo', "
        f"'hf://<repo id>/<file>.safetensors', or one of (append @<revision> to the repo id to "
        f"pin one):\n  {names}"
    )


def parse_hub_name(name: str, revision: str | None = None) -> HubName | None:
    """The download a name stands for, or None when it does not look like a Hub name.

    Args:
        name: ``[hf://]<owner>/<repo>[@<revision>][/<file stem or file name>]``.
        revision: revision to use when the name carries none.

    Returns:
        :class:`HubName`; None for strings that cannot be Hub names (one path component, absolute
        or relative paths such as ``./x`` or ``runs/a/b/c.pt`` outside ``hf://``).

    Raises:
        FileNotFoundError: a Hub-shaped name outside the table, listing the known names;
        ValueError: two different revisions (``@rev`` and ``revision=``).
    """
    explicit = name.startswith(HUB_PREFIX)
    text = name[len(HUB_PREFIX) :] if explicit else name
    parts = text.split("/")
    if len(parts) < 2 or not all(parts) or (not explicit and (text.startswith(".") or len(parts) > 3)):
        if explicit:
            raise _unknown(name, "expected hf://<owner>/<repo>[@<revision>]/<file>")
        return None
    owner, repo = parts[0], parts[1]
    if "@" in repo:
        repo, at = repo.split("@", 1)
        if revision is not None and revision != at:
            raise ValueError(f"{name!r} names revision {at!r} but revision={revision!r} was passed")
        revision = at
    repo_id, rest = f"{owner}/{repo}", "/".join(parts[2:])
    in_repo = [w for w in HUB_WEIGHTS if w.repo_id.lower() == repo_id.lower()]
    if not in_repo:
        if explicit and rest.endswith(_SUFFIX):
            return HubName(repo_id, rest, revision, None)
        raise _unknown(name, f"no released file in a repository {repo_id!r}")
    if not rest:
        if len(in_repo) > 1:
            raise _unknown(name, f"{in_repo[0].repo_id} holds several files: name one")
        return HubName(in_repo[0].repo_id, in_repo[0].filename, revision, in_repo[0])
    stem = rest.removesuffix(_SUFFIX).lower()
    for w in in_repo:
        if w.filename.removesuffix(_SUFFIX).lower() == stem:
            return HubName(w.repo_id, w.filename, revision, w)
    raise _unknown(name, f"{in_repo[0].repo_id} has no released file {rest!r}")


def _commit_of(path: Path) -> str:
    """The commit of a file in the Hub cache (``snapshots/<commit>/<file>``), else ``""``."""
    for parent in path.parents:
        if parent.parent.name == "snapshots" and _COMMIT.match(parent.name):
            return parent.name
    return ""


def hub_download(
    hub: HubName, cache_dir: str | Path | None = None
) -> tuple[Path, str]:
    """Fetch a file into (or find it in) the Hugging Face cache.

    Args:
        hub: what to fetch (:func:`parse_hub_name`).
        cache_dir: cache folder; default ``huggingface_hub``'s (``HF_HUB_CACHE``).

    Returns:
        ``(path in the cache's snapshot folder, commit hash)``.

    Raises:
        FileNotFoundError: not in the cache while offline (``HF_HUB_OFFLINE=1``), or the Hub
            does not have the repository, revision or file (the message says which and what to do).
    """
    import huggingface_hub  # third-party, loaded only when a Hub name is used
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{hub.repo_id}{'@' + hub.revision if hub.revision else ''}/{hub.filename}"
    try:
        path = huggingface_hub.hf_hub_download(
            hub.repo_id, hub.filename, revision=hub.revision, cache_dir=cache_dir,
            library_name="smartiesviz", library_version=__version__,
        )  # fmt: skip
    except LocalEntryNotFoundError as err:
        raise FileNotFoundError(
            f"{where} is not in the Hugging Face cache ({cache_dir or 'HF_HUB_CACHE'}) and the Hub "
            "cannot be reached (offline: HF_HUB_OFFLINE is set, or no network). Fetch it once "
            f"with `hf download {hub.repo_id} {hub.filename}` on a connected machine, or point "
            "HF_HUB_CACHE at a cache that holds it"
        ) from err
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as err:
        what = {RepositoryNotFoundError: "repository", RevisionNotFoundError: "revision"}
        kind = next((v for k, v in what.items() if isinstance(err, k)), "file")
        raise FileNotFoundError(f"the Hugging Face Hub has no such {kind}: {where}") from err
    except HfHubHTTPError as err:
        raise FileNotFoundError(f"could not fetch {where} from the Hugging Face Hub: {err}") from err
    path = Path(path)
    return path, _commit_of(path)


def check_blob_sha256(path: Path, sha256: str) -> None:
    """Refuse a cached file whose content does not match its blob name.

    The Hub cache names a large (LFS) file's blob by its sha256; a mismatch means the cache was
    corrupted (a truncated download, a disk error, an edit).
    """
    blob = Path(path).resolve().name
    if _SHA256.match(blob) and blob != sha256:
        raise CheckpointError(
            f"{path} in the Hugging Face cache has sha256 {sha256} but its blob is {blob}: the "
            "cached file is corrupt; delete it (`hf cache delete`) and fetch it again"
        )


def task_head_note(dropped: list[str], weights: HubWeights | None = None) -> str | None:
    """The report line for a file's task head left out of an encoder, or None without one.

    Args:
        dropped: the file keys that were not loaded (``report.skipped``).
        weights: the file's :data:`HUB_WEIGHTS` entry, to name the task.
    """
    head = [k for k in dropped if k.startswith(("head.", "head_drop."))]
    if not head:
        return None
    what = f"{weights.head} head for {weights.task}, {weights.num_classes} classes" if weights else "task head"
    shown = ", ".join(head[:3]) + (", …" if len(head) > 3 else "")
    return (
        f"head: the file's {what} ({len(head)} tensors: {shown}) is not part of the encoder and "
        "was dropped; the encoder gives features"
    )
