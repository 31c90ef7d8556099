"""Applications: real processes serving on loopback on the port CML gives applications."""
