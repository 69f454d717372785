import MicroRunnerAgent
import MicroRunnerSystem

// Synchronous on purpose: an async main costs ~6 ms of start-up in a static binary, and READY must
// go out first. Everything lives in MicroRunnerAgent so tests can run it in-process.
RunnerMain.main(processArguments())
