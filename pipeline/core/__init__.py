"""Pure logic, the bottom layer: key order, property values, ranges and how to cut them, narrow
queries, counters and totals, the summary. No Beam and no Google client here, so all of it is
unit tested without an emulator and imported cheaply."""
