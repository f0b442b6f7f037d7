"""Everything that touches git and DVC: clone, materialize, track, save, push; the live-metrics logger."""
