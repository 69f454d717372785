@_exported import CMicroRunnerShims
import MicroRunnerProtocol

#if canImport(Glibc)
@_exported import Glibc
#elseif canImport(Musl)
@_exported import Musl
#elseif canImport(Darwin)
@_exported import Darwin
#else
// Embedded Swift has no libc module: the declarations come from CMicroRunnerShims (mr_libc.h), and what Glibc's
// overlay adds in Swift (errno, the non-variadic openat/fcntl, SIG_IGN) is supplied here under the same names.
/// The calling thread's errno.
package var errno: Int32 { mr_errno() }
/// openat(2).
package func openat(_ dirfd: Int32, _ path: UnsafePointer<CChar>, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
    mr_openat(dirfd, path, flags, mode)
}
/// fcntl(2) with an integer argument.
package func fcntl(_ fd: Int32, _ cmd: Int32, _ arg: Int32 = 0) -> Int32 { mr_fcntl(fd, cmd, arg) }
/// The "ignore" signal disposition.
package var SIG_IGN: (@convention(c) (Int32) -> Void)? { mr_sig_ign() }
/// The default signal disposition.
package var SIG_DFL: (@convention(c) (Int32) -> Void)? { mr_sig_dfl() }
// File type bits, typed as `mode_t` as Glibc's overlay types them (C gives them as Int).
package let S_IFMT: mode_t = 0o170000
package let S_IFREG: mode_t = 0o100000
package let S_IFDIR: mode_t = 0o040000
package let S_IFLNK: mode_t = 0o120000
#endif

/// The process's arguments (Embedded Swift has no `CommandLine`).
package func processArguments() -> [String] {
    guard let argv = mr_argv() else { return [] }
    var out: [String] = []
    for i in 0..<Int(mr_argc()) {
        if let arg = argv[i] { out.append(String(cString: arg)) }
    }
    return out
}

/// The text of an errno value, e.g. `No such file or directory`.
package func errnoText(_ code: Int32) -> String {
    guard let p = strerror(code) else { return "errno \(code)" }
    return String(cString: p)
}

/// Nanoseconds on the monotonic clock: deadlines and durations never jump with the wall clock.
package enum Monotonic {
    /// Now, in nanoseconds since an arbitrary start.
    package static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// `start` plus whole seconds, saturating: a deadline too far to represent is "never", not an overflow trap
    /// (a CMD with `timeout: 9223372037` once crashed the runner here).
    package static func deadline(from start: Int64, seconds: Int) -> Int64 {
        let (ns, o1) = Int64(clamping: seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if o1 { return seconds > 0 ? .max : start }
        let (sum, o2) = start.addingReportingOverflow(ns)
        return o2 ? (ns > 0 ? .max : .min) : sum
    }

    /// `start` plus fractional seconds, saturating (non-finite or huge values give `.max`).
    package static func deadline(from start: Int64, seconds: Double) -> Int64 {
        guard seconds.isFinite else { return seconds > 0 ? .max : start }
        let ns = (seconds * 1e9).rounded()
        // 9.2e18 is the largest Double below Int64.max's neighbourhood that converts safely.
        guard ns < 9.2e18 else { return .max }
        guard ns > -9.2e18 else { return start }
        let (sum, overflow) = start.addingReportingOverflow(Int64(ns))
        return overflow ? (ns > 0 ? .max : .min) : sum
    }

    /// Seconds elapsed since `start`.
    package static func seconds(since start: Int64) -> Double {
        Double(now() - start) / 1e9
    }
}

/// Wall-clock time as an RFC 3339 UTC timestamp.
package func wallClockTimestamp() -> String {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Timestamp.format(seconds: Int64(ts.tv_sec), nanoseconds: Int(ts.tv_nsec))
}

/// Writes all of `bytes` to `fd`, retrying on EINTR and short writes.
/// - Returns: 0 on success, else the errno that stopped it.
@discardableResult
package func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
    var offset = 0
    while offset < bytes.count {
        let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if n < 0 {
            if errno == EINTR { continue }
            return errno
        }
        offset += n
    }
    return 0
}

/// Signal names for results and messages (`SIGKILL`).
package func signalName(_ signal: Int32) -> String {
    switch signal {
    case SIGHUP: "SIGHUP"
    case SIGINT: "SIGINT"
    case SIGQUIT: "SIGQUIT"
    case SIGILL: "SIGILL"
    case SIGTRAP: "SIGTRAP"
    case SIGABRT: "SIGABRT"
    case SIGBUS: "SIGBUS"
    case SIGFPE: "SIGFPE"
    case SIGKILL: "SIGKILL"
    case SIGUSR1: "SIGUSR1"
    case SIGSEGV: "SIGSEGV"
    case SIGUSR2: "SIGUSR2"
    case SIGPIPE: "SIGPIPE"
    case SIGALRM: "SIGALRM"
    case SIGTERM: "SIGTERM"
    case SIGCHLD: "SIGCHLD"
    case SIGCONT: "SIGCONT"
    case SIGSTOP: "SIGSTOP"
    case SIGTSTP: "SIGTSTP"
    case SIGXCPU: "SIGXCPU"
    case SIGXFSZ: "SIGXFSZ"
    case SIGSYS: "SIGSYS"
    default: "SIG\(signal)"
    }
}

/// The index of the first `byte` in `bytes[start..<end]` (`end` defaults to the end), by memchr: `firstIndex(of:)`
/// goes byte by byte, in the runner's `-Osize` build as in mrctl, and a 100 MB stream of 80-byte lines is 1.25
/// million searches on each side (5-6% of mrctl's time, and more of the runner's, before).
package func firstIndex(
    of byte: UInt8,
    in bytes: UnsafeRawBufferPointer,
    from start: Int = 0,
    to end: Int? = nil
)
    -> Int?
{
    let end = min(end ?? bytes.count, bytes.count)
    guard start < end, let base = bytes.baseAddress else { return nil }
    guard let hit = memchr(base + start, Int32(byte), end - start) else { return nil }
    return base.distance(to: UnsafeRawPointer(hit))
}
