/// The local servers and processes tests start (also used by the benchmarks) come with this
/// module.
@_exported public import LocalServices
