"""`fino-tui`: the Textual dashboard of the experiment store (reads it; writes only on a user's
explicit action). The core package `fino` never imports it."""
