"""The parts of `scripts/benchmark.py`, the command-line front that runs them in order and writes the results.

- `measure`: timing, FLOP counting, profiling, RSS and machine facts; nothing here knows UniCL.
- `workloads`: what is measured: the run's sizes (`Settings`), the models, their inputs and training steps.
- `train_steps`: our training step and the dual encoder's, profiled, FLOP-counted and timed round-robin.
- `zero_shot`: our zero-shot classifier and the two pipelines, timed round-robin.
- `workers`: the measurements that need a fresh process (peak RSS, the malloc A/B) and how they are launched.
- `report`: the measurements as figures against named peers and goals, and the markdown table.
"""
