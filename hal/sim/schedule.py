# The simulator's fault schedules (the board's sensor faults, the flash's faults): each
# fault is [spec, state] with spec's at_s (when it starts) and for_s (how long; 0: for good),
# state "pending", "on" or "done".


def switch_due(entry, t_ms):
    """True when the fault is to be switched on at t_ms (t_ms since the schedule began),
    False when off, None when nothing changes; entry's state is moved on. Allocates nothing."""
    f, state = entry
    start = int(f.get("at_s", 0) * 1000)
    if state == "pending" and t_ms >= start:
        entry[1] = "on"
        return True
    length = int(f.get("for_s", 0) * 1000)
    if state == "on" and length and t_ms >= start + length:
        entry[1] = "done"
        return False
    return None
