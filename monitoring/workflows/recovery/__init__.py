"""The state store's recovery, ``cml-monitor state``: check, back up, restore (catching up since the backup), rebuild."""
