"""Scheduled mode: the coordinator grants every step; schedulers choose; traces replay.

In the spirit of awslabs/shuttle: a `Scheduler` is told when an execution
starts and asked one question per step (which eligible CPU goes next); one
module per scheduler; a failure ends with a string that replays it.
"""
