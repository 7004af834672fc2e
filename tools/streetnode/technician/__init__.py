"""The technician's commands: provision, bundle, flash, deploy and the Pi gateway service;
board/ holds the files deploy puts on a board's root."""
