"""ML Runtimes: a catalogue like CML's (editors, kernels, editions) mapped to the local interpreter."""
