"""Litmus tests in the LKMM's C format, run on the emulated CPUs."""
