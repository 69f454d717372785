// The wire types (ExecParams, ExecResult, EventMessage...) are part of this library's API: one import is enough.
@_exported import MicroRunnerProtocol
