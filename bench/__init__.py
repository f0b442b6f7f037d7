"""Benchmarks of issue #7: where the time of a run goes, against pure compute and the peer pipeline.

    make bench                 # everything, ~10-15 min on 2 cores; ends with one JSON line
    BENCH_QUICK=1 make bench   # tiny sizes: a smoke run of the whole harness (~1-2 min)

Benchmarks print figures; they never pass or fail. Full results: bench/out/results.json.
"""
