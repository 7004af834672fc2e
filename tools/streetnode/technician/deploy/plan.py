"""The plan: what a deploy copies, reuses, removes and installs, from a survey of the board
and a bundle's manifest. Pure (no board, no I/O beyond the bundle's files)."""

from pathlib import Path

from streetnode.technician import bundle as bundlemod
from streetnode.technician.bundle import LOADERS, sha256

SLOTS = ("a", "b")
POINTER = "slot"  # names the active slot (board/boot.py)
DATA = "data"  # the node's own files: config, CA, outbox, state (never removed)
MAINT = "maint"  # one-shot marker: the next boot stops at the REPL instead of the node


class Plan:
    """What to do on the board: from a survey, a bundle's manifest and the data files."""

    def __init__(self, survey, manifest, bundle_dir, data_files):
        self.active = survey["slot"] if survey["slot"] in SLOTS else None
        self.free = survey.get("free")
        self.board_sizes = survey.get("sizes") or {}
        self.target = "b" if self.active == "a" else "a"
        have = survey["files"]
        want = {}  # board path -> (sha256, bundle path)
        for f in manifest["files"]:
            p = f["path"]
            if p.startswith(bundlemod.APP + "/"):
                want[self.target + p[len(bundlemod.APP):]] = (f["sha256"], p)
        man_bytes = (Path(bundle_dir) / bundlemod.MANIFEST).read_bytes()
        want[self.target + "/" + bundlemod.MANIFEST] = (sha256(man_bytes), bundlemod.MANIFEST)
        self.manifest_path = self.target + "/" + bundlemod.MANIFEST
        self.want = want
        # Is the active slot exactly this bundle already?
        current = {}
        if self.active:
            current = {p[len(self.active) + 1:]: s for p, s in have.items() if p.startswith(self.active + "/")}
        wanted_rel = {p[len(self.target) + 1:]: s for p, (s, _) in want.items()}
        self.up_to_date = bool(self.active) and current == wanted_rel
        self.copy, self.local, self.keep = [], [], []
        if not self.up_to_date:
            for path in sorted(want):
                sha, src = want[path]
                rel = path[len(self.target) + 1:]
                if have.get(path) == sha:
                    self.keep.append(path)
                elif self.active and current.get(rel) == sha:
                    self.local.append((self.active + "/" + rel, path))
                else:
                    self.copy.append((src, path))
            self.remove = sorted(p for p in have if p.startswith(self.target + "/") and p not in want)
        else:
            self.remove = []
        # The loaders at the root, and the node's data files.
        loader_sha = {n: sha256((Path(bundle_dir) / n).read_bytes()) for n in LOADERS}
        self.loaders = [n for n in LOADERS if have.get(n) != loader_sha[n]]
        self.data = [(name, data) for name, data in data_files if have.get(DATA + "/" + name) != sha256(data)]
        self.our_loader_runs = have.get("main.py") == loader_sha["main.py"] and self.active is not None

    def bytes_needed(self, sizes, block=4096):
        """Flash the deploy takes beyond what it frees in the slot it rewrites (whole blocks
        per file, as littlefs allocates them)."""
        blocks = lambda n: max(1, -(-n // block)) * block  # noqa: E731
        written = [dest for _, dest in self.copy] + [dest for _, dest in self.local]
        need = sum(blocks(sizes[dest]) for dest in written) + sum(blocks(len(data)) for _, data in self.data)
        freed = sum(blocks(self.board_sizes[p]) for p in written + self.remove if p in self.board_sizes)
        return need - freed

    @property
    def firmware_changes(self):
        return not self.up_to_date

    @property
    def nothing_to_do(self):
        return self.up_to_date and not self.loaders and not self.data
