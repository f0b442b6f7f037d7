"""Ray glue: the Tune driver and trial (`tune`) with its searchers (`searchers`) and resume (`resume`), the Ray
Train loop and driver (`train`) and the training forms a problem can bring (`forms`), Ray Data batch inference
(`predict`), a local Ray and its workers (`local`, `worker_setup`), the bounded wait for a cluster's resources
(`resources`), checkpoint storage every node reaches (`storage`), the DVCLive Tune callback (`tune_dvclive`) and the
baseline of streamed data (`baseline`).
Imports Ray and the pure layers, never Flyte.
"""
