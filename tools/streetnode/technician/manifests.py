"""The device packages' manifest.py files, evaluated on the host: what a board carries.

Every device package (firmware/, drivers/, drivers/<chip>/, hal/, hal/sim/, ...) has a
manifest.py in micropython-lib's form, naming its own files and what it needs:

    metadata(description="...", version="0.1.0")
    require("hal")                                   # another package's manifest
    require("umqtt.simple")                          # a pinned package (common/deps.py)
    package("drivers/bme280", base_path="../..")     # a package directory, all its .py
    package("hal", files=("clock.py",), base_path="..")
    module("firmware/main_unix.py", base_path="../..")
    include("compat/manifest.py")                    # another manifest, by path

Paths are relative to the manifest's directory (base_path) and name the file's place on
the board's path: package("drivers/bme280", base_path="../..") from drivers/bme280/
gives drivers/bme280/__init__.py and its siblings, so `import drivers.bme280` works
with hal/ beside it. require("x.y") is the manifest x/y/manifest.py of the repository,
or a pinned package of common/deps.py named micropython-x.y (files from its lib).

    files = manifests.resolve(["firmware", "hal.sim"], lib)   # {dest: (source, opt)}

Only these five functions exist in a manifest; anything else is an error naming the
manifest, as is a file that is not there or a requirement nobody provides.
"""

from pathlib import Path

from streetnode.common import deps
from streetnode.common.errors import Failure
from streetnode.common.paths import REPO

MANIFEST = "manifest.py"


class ManifestError(Failure):
    pass


def manifest_path(name):
    """The manifest file of requirement `name` in the repository, or None."""
    path = REPO.joinpath(*name.split(".")) / MANIFEST
    return path if path.is_file() else None


class _Evaluation:
    def __init__(self, lib):
        self.lib = Path(lib) if lib is not None else None
        self.files = {}  # dest -> (source path, opt)
        self.metadata = {}  # manifest path (repository-relative) -> metadata(...)
        self.seen = set()

    def _add(self, dest, src, opt, where):
        if not src.is_file():
            raise ManifestError("%s: %s does not exist" % (where, src))
        old = self.files.get(dest)
        if old is not None and old[0] != src:
            raise ManifestError("%s: %s is named twice, from %s and %s" % (where, dest, old[0], src))
        self.files[dest] = (src, opt)

    def require(self, name, where):
        if name in self.seen:
            return
        self.seen.add(name)
        path = manifest_path(name)
        if path is not None:
            return self.run(path)
        for pkg in deps.PACKAGES:
            if pkg.name == "micropython-" + name:
                if self.lib is None:
                    raise ManifestError("%s: require(%r) needs the pinned device packages' lib" % (where, name))
                for rel in sorted(pkg.files):
                    self._add(rel, self.lib / rel, None, where)
                return
        raise ManifestError("%s: require(%r): no %s/%s in the repository and no pinned package micropython-%s"
                            % (where, name, name.replace(".", "/"), MANIFEST, name))  # fmt: skip

    def run(self, path):
        path = Path(path).resolve()
        here = path.parent
        try:
            where = path.relative_to(REPO).as_posix()
        except ValueError:
            where = str(path)

        def metadata(description=None, version=None, license=None, author=None):
            self.metadata[where] = {"description": description, "version": version, "license": license, "author": author}

        def require(name, library=None, **_opts):
            self.require(name, where)

        def include(manifest_path):
            self.run(here / manifest_path)

        def package(package_path, files=None, base_path=".", opt=None):
            base = (here / base_path).resolve()
            root = base / package_path
            if not root.is_dir():
                raise ManifestError("%s: package(%r): %s is not a directory" % (where, package_path, root))
            if files is None:
                names = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*.py"))
                         if p.name != MANIFEST and "__pycache__" not in p.parts]  # fmt: skip
            else:
                names = list(files)
            for name in names:
                self._add("%s/%s" % (package_path.strip("/"), name), root / name, opt, where)

        def module(module_path, base_path=".", opt=None):
            self._add(module_path, (here / base_path).resolve() / module_path, opt, where)

        env = {"metadata": metadata, "require": require, "include": include, "package": package, "module": module}
        try:
            code = compile(path.read_text(), str(path), "exec")
        except (OSError, SyntaxError) as e:
            raise ManifestError("%s: cannot be read: %s" % (where, e))
        try:
            exec(code, {"__builtins__": {}, "__file__": str(path)}, env)
        except NameError as e:
            raise ManifestError("%s: %s (a manifest may call metadata, require, include, package, module)" % (where, e))
        except TypeError as e:
            raise ManifestError("%s: %s" % (where, e))


def evaluate(requirements, lib=None):
    """(files, metadata): every file the requirements name, dest -> (source, opt), and
    the metadata of each manifest that was read."""
    ev = _Evaluation(lib)
    for name in requirements:
        ev.require(name, "the target")
    return ev.files, ev.metadata


def resolve(requirements, lib=None):
    """{dest path on the board: (source path, opt)} of what the requirements name."""
    return evaluate(requirements, lib)[0]


def device_packages():
    """Every directory of device code (a package with an __init__.py under firmware/,
    drivers/ and hal/), repository-relative: each must have a manifest.py."""
    out = []
    for top in ("firmware", "drivers", "hal"):
        for init in sorted((REPO / top).rglob("__init__.py")):
            if "__pycache__" not in init.parts:
                out.append(init.parent.relative_to(REPO).as_posix())
    return out
