"""Benchmarks: where the time of a run goes, as ratios against pure compute and the rebuilt peer pipeline.

    make bench                 # everything, ~15-20 min on 2 cores; ends with one JSON line
    BENCH_QUICK=1 make bench   # tiny sizes: a smoke run of the whole harness (~4-5 min)
    python -m bench.curves     # the cost curves at full size (~15-25 min): bench/curves/*.png

Benchmarks print figures; they never pass or fail. Full results: bench/out/results.json.
"""
