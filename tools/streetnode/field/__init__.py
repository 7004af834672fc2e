"""The field crew's commands: check (commissioning), monitor (live fleet), report (completeness),
with the fleet evaluation they share and the capture of what a broker delivered."""
