/// Tests and benchmarks start processes with `ProcessSpawn.ChildProcess`, the one child-process
/// type; it comes with this module.
@_exported public import ProcessSpawn
