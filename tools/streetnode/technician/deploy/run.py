"""The deploy itself: check the inputs on the host, survey the board, apply the plan into the
inactive slot, verify it on the board, flip the pointer, reset, and (--wait-online) watch
the node come up."""

from pathlib import Path

from streetnode.common.errors import EXIT_INPUT, EXIT_OK, EXIT_VERIFY, Failure
from streetnode.common.paths import device_code
from streetnode.technician import bundle as bundlemod
from streetnode.technician.bundle import sha256
from streetnode.technician.deploy import board_code
from streetnode.technician.deploy.serial_board import Board
from streetnode.technician.deploy.online import OnlineWatcher, broker_options
from streetnode.technician.deploy.plan import DATA, MAINT, POINTER, Plan
from streetnode.technician.deploy.progress import Progress

TARGET_OF_BOARD = {board: target for target, spec in bundlemod.TARGETS.items() for board in spec["boards"]}


def read_config(path):
    """(bytes, validated config, extra data files) of a config file, checked on the host
    with the firmware's own validator; Failure(EXIT_INPUT) naming the problem."""
    device_code()
    from firmware import config as cfgmod

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise Failure("config file %s not found" % path, EXIT_INPUT)
    except OSError as e:
        raise Failure("config file %s cannot be read: %s" % (path, e.strerror or e), EXIT_INPUT)
    try:
        cfg = cfgmod.validate(cfgmod.parse_json(raw))
    except ValueError as e:
        raise Failure("config file %s is invalid: %s" % (path, e), EXIT_INPUT)
    files = [(cfgmod.CONFIG_FILE, raw)]
    ca = (cfg.get("mqtt") or {}).get("ca")
    if ca:
        ca_path = path.parent / ca
        try:
            files.append((ca, ca_path.read_bytes()))
        except OSError:
            raise Failure("config file %s names the CA certificate %s, but %s is missing" % (path, ca, ca_path), EXIT_INPUT)
    return raw, cfg, files


def get_bundle(args, cfg):
    target = TARGET_OF_BOARD.get(cfg["board"])
    if target is None:
        raise Failure("board %r in the config is not deployed with mpremote (boards: %s)"
                      % (cfg["board"], ", ".join(sorted(TARGET_OF_BOARD))), EXIT_INPUT)
    if args.bundle:
        try:
            manifest = bundlemod.load(args.bundle)
        except Failure as e:
            raise Failure(str(e), EXIT_INPUT)
        path = Path(args.bundle)
    else:
        if args.target and args.target != target:
            raise Failure("--target %s does not run board %s (its target is %s)" % (args.target, cfg["board"], target), EXIT_INPUT)
        path, manifest = bundlemod.make(target)
        print("bundle: %s (streetnode %s for %s)" % (path, manifest["version"], target))
    if manifest["target"] != target:
        raise Failure("bundle %s is for %s, but the config's board %s needs %s"
                      % (path, manifest["target"], cfg["board"], target), EXIT_INPUT)
    return path, manifest


def check_board(ident, port, cfg, manifest):
    """Refuse, before anything is changed, a config or bundle for another board than the one
    attached (hal/boards.py knows which MicroPython port runs each board)."""
    device_code()
    from hal import boards

    why = boards.fits(cfg["board"], ident.get("platform"), ident.get("implementation"))
    if why:
        raise Failure("%s is %s (sys.platform %s), but the config's board is %s and the bundle's target is %s: "
                      "nothing was changed; provision a config for this board (streetnode provision --board ...)"
                      % (port, ident.get("machine") or "?", ident.get("platform"), cfg["board"], manifest["target"]),
                      EXIT_INPUT)  # fmt: skip
    print("board at %s: %s (%s), config board %s, bundle %s" % (port, ident.get("machine") or "?",
          ident.get("platform"), cfg["board"], manifest["target"]))  # fmt: skip


def _kib(n):
    return "%.1f KiB" % (n / 1024.0)


def deploy(args):
    _raw, cfg, data_files = read_config(args.config)
    bundle_dir, manifest = get_bundle(args, cfg)
    watcher = None
    if args.wait_online:  # before the board: a wrong broker fails fast
        watcher = OnlineWatcher(cfg, broker_options(args, cfg, data_files))
    try:
        node = cfg["node_id"]
        board = Board(args.port, connect_timeout=args.connect_timeout).open()
        try:
            board.raw_repl()
            check_board(board.identify(), args.port, cfg, manifest)
            survey = board.survey([DATA + "/" + name for name, _ in data_files])
            plan = Plan(survey, manifest, bundle_dir, data_files)
            if plan.nothing_to_do:
                print("%s already runs streetnode %s (%s) from slot %s with this config: nothing copied"
                      % (args.port, manifest["version"], manifest["target"], plan.active))
            else:
                _apply(board, plan, bundle_dir, manifest)
            if args.no_reset:
                print("not reset (--no-reset): the board runs the new version at its next reset")
                return EXIT_OK
            if watcher:
                watcher.arm()
            board.reset()
            print("reset %s: node %s starting" % (args.port, node))
        finally:
            board.close()
        if watcher:
            status, data = watcher.wait(args.timeout)
            print("node %s is online (fw %s) and published reading seq %s" % (node, status.get("fw"), data.get("seq")))
        return EXIT_OK
    finally:
        if watcher:
            watcher.close()


def _apply(board, plan, bundle_dir, manifest):
    bundle_dir = Path(bundle_dir)
    if plan.free is not None:
        sizes = {dest: (bundle_dir / src).stat().st_size for dest, (_, src) in plan.want.items()}
        need = plan.bytes_needed(sizes, bundlemod.TARGETS[manifest["target"]]["block"])
        if need > plan.free:
            raise Failure("the board has %s of flash free, the new version needs %s: nothing was changed"
                          % (_kib(plan.free), _kib(need)), EXIT_INPUT)
    # A maintenance boot first: the node is not running, so no watchdog bites while we copy
    # (an RP2040's cannot be stopped). The marker is one-shot, and ignored after a power-on.
    if plan.our_loader_runs:  # a blank board (or another firmware) runs no node of ours
        board.exec(board_code.touch(MAINT))
        board.reset()
        board.wait_repl()
    if plan.firmware_changes:
        total = sum((bundle_dir / src).stat().st_size for src, _ in plan.copy)
        print("deploying streetnode %s (%s) into slot %s: %d files to copy (%s), %d reused from slot %s, %d already there, %d to remove"
              % (manifest["version"], manifest["target"], plan.target, len(plan.copy), _kib(total), len(plan.local),
                 plan.active or "-", len(plan.keep), len(plan.remove)))
        dirs = sorted({p.rsplit("/", 1)[0] for p in plan.want})
        board.exec(board_code.mkdirs(dirs))
        if plan.remove:
            board.exec(board_code.remove(plan.remove))
        # The slot's manifest goes last and the pointer never names this slot while we write.
        board.exec(board_code.remove([plan.manifest_path]))
        if plan.local:
            board.exec(board_code.copy(plan.local))
        order = sorted(plan.copy, key=lambda c: c[1] == plan.manifest_path)
        bar = Progress(total, len(order))
        for src, dest in order:
            data = (bundle_dir / src).read_bytes()
            bar.file(dest, len(data))
            board.write_file(dest, data, progress=lambda w, s: bar.update(w, s))
        bar.end()
        if plan.manifest_path not in [d for _, d in order]:  # kept or reused: it was removed above
            board.write_file(plan.manifest_path, (bundle_dir / bundlemod.MANIFEST).read_bytes())
        # Verify the whole slot, as the board reads it back.
        got = board.survey()["files"]
        slot_files = {p: s for p, s in got.items() if p.startswith(plan.target + "/")}
        expected = {p: s for p, (s, _) in plan.want.items()}
        if slot_files != expected:
            bad = sorted(p for p in set(slot_files) | set(expected) if slot_files.get(p) != expected.get(p))
            raise Failure("verification failed: %d file(s) in slot %s differ from the manifest (first: %s); "
                          "the board still boots slot %s" % (len(bad), plan.target, bad[0], plan.active or "none"), EXIT_VERIFY)
        print("verified %d files in slot %s" % (len(expected), plan.target))
    for name in plan.loaders:
        _install(board, name, (bundle_dir / name).read_bytes())
    if plan.data:
        board.exec(board_code.mkdirs([DATA]))
    for name, data in plan.data:
        _install(board, DATA + "/" + name, data)
        print("installed %s/%s" % (DATA, name))
    if not plan.data:
        print("config unchanged")
    board.exec(board_code.remove([MAINT]))  # never leave a marker for a later boot
    if plan.firmware_changes:
        _install(board, POINTER, plan.target.encode())
        print("slot %s is active: streetnode %s" % (plan.target, manifest["version"]))


def _install(board, path, data):
    """Write `path` atomically: a temp name, its sha256 checked on the board, a rename."""
    tmp = path + ".tmp"
    board.write_file(tmp, data)
    got, want = board.hashes([tmp])[tmp], sha256(data)
    if got != want:
        board.exec(board_code.remove([tmp]))
        raise Failure("verification failed for %s: the board holds sha256 %s, expected %s" % (path, got, want), EXIT_VERIFY)
    board.exec(board_code.replace(tmp, path))
