import MicroRunnerHandlers
import MicroRunnerProtocol
import MicroRunnerSystem

extension Agent {
    /// Starts the stdin reader thread: frames lines, parses envelopes, acts on CANCEL at once and queues
    /// everything else for the worker in wire order.
    func startReader() {
        startThread(stackBytes: 2 << 20) { [self] in
            readLoop()
        }
    }

    func readLoop() {
        var framer = LineFramer(maxLineBytes: config.maxLineBytes)
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        while true {
            let read = buffer.withUnsafeMutableBytes { raw in
                Result { () throws(SystemError) in try Sys.read(config.inputFD, into: raw) }
            }
            var n = 0
            switch read {
            case .success(let count): n = count
            case .failure(let error): if config.verbose { log("stdin: \(errnoText(error.code))") }
            }
            if n == 0 {
                if let last = framer.finish(), let body = handle(last) {
                    queue.push(
                        .reject(.invalid("stdin closed before the \(body.length) bytes of content"), commandID: nil)
                    )
                }
                queue.push(.endOfInput)
                return
            }
            var position = 0
            while position < n {
                let (frame, next) = buffer.withUnsafeBufferPointer {
                    framer.next(UnsafeBufferPointer(rebasing: $0[0..<n]), from: position)
                }
                position = next
                guard let frame, let body = handle(frame) else { continue }
                guard readBody(body, from: buffer, at: &position, end: n) else {
                    queue.push(.endOfInput)
                    return
                }
            }
        }
    }

    /// A CMD line announced raw content (`params.content_length`): what to do with it once it is read.
    struct PendingBody {
        /// Bytes that follow the line.
        var length: Int
        /// Queued with the bytes; `nil`: the bytes are read and dropped and `rejection` is answered.
        var command: (CommandMessage, rawParams: [UInt8]?, weight: Int)?
        var rejection: (RunnerError, commandID: String?)?
    }

    /// Reads a CMD's raw content: what is left of `buffer` first, then straight from stdin into the content's
    /// own storage (one copy from the kernel, none through the line framer), and queues the command with it.
    /// - Returns: false when stdin ended first (the command is answered with an error).
    func readBody(_ body: PendingBody, from buffer: [UInt8], at position: inout Int, end: Int) -> Bool {
        let fromBuffer = min(body.length, end - position)
        guard let (command, rawParams, weight) = body.command else {
            var left = body.length - fromBuffer
            position += fromBuffer
            var scratch = [UInt8](repeating: 0, count: 64 * 1024)
            while left > 0 {
                let n = scratch.withUnsafeMutableBytes {
                    (try? Sys.read(
                        config.inputFD,
                        into: UnsafeMutableRawBufferPointer(rebasing: $0[..<min($0.count, left)])
                    )) ?? 0
                }
                if n == 0 { break }
                left -= n
            }
            if let (error, id) = body.rejection { queue.push(.reject(error, commandID: id)) }
            return left == 0
        }
        var filled = fromBuffer
        let content = [UInt8](unsafeUninitializedCapacity: body.length) { storage, count in
            // copyMemory (memcpy): an element loop is a byte-at-a-time copy in the Embedded -Osize build, and up to
            // 256 KiB of each chunk is already in the read buffer.
            buffer.withUnsafeBytes { source in
                if fromBuffer > 0, let to = storage.baseAddress, let from = source.baseAddress {
                    UnsafeMutableRawPointer(to).copyMemory(from: from + position, byteCount: fromBuffer)
                }
            }
            while filled < body.length {
                let rest = UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: storage[filled...]))
                let n = (try? Sys.read(config.inputFD, into: rest)) ?? 0
                if n == 0 { break }
                filled += n
            }
            count = filled
        }
        position += fromBuffer
        guard filled == body.length else {
            queue.push(
                .reject(
                    .invalid(
                        "\(command.type) \(command.id): stdin closed after \(filled) of \(body.length) bytes of content"
                    ),
                    commandID: command.id
                )
            )
            return false
        }
        queue.push(.command(command, rawParams: rawParams, size: weight + content.count, content: content))
        return true
    }

    /// Handles one frame; a CMD that announces raw content comes back to the caller, who reads the bytes.
    func handle(_ frame: LineFramer.Frame) -> PendingBody? {
        switch frame {
        case .oversized(let count):
            queue.push(
                .reject(
                    .invalid(
                        "line of \(count) bytes exceeds the limit of \(config.maxLineBytes) bytes; it was discarded"
                    ),
                    commandID: nil
                )
            )
            return nil
        case .line(let bytes):
            // A blank line: nothing to answer.
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return nil }
            return handleLine(bytes)
        }
    }

    func handleLine(_ bytes: [UInt8]) -> PendingBody? {
        let envelope: Envelope
        do {
            envelope = try Envelope.parse(line: bytes, keepRawParams: keepRawParams)
        } catch {
            queue.push(.reject(error, commandID: nil))
            return nil
        }
        switch envelope.type {
        case .command:
            // ext file.raw_content: whether raw bytes follow is read from the line alone, before anything else
            // about the command is judged, so a command refused for any reason still has its bytes taken off
            // stdin and the next line is found where it is. (A length that is not a count cannot be followed.)
            let announced = envelope.data["params"]?["content_length"]?.intValue.flatMap { $0 >= 0 ? $0 : nil }
            func refuse(_ error: RunnerError, _ id: String?) -> PendingBody? {
                guard let announced else {
                    queue.push(.reject(error, commandID: id))
                    return nil
                }
                return PendingBody(length: announced, command: nil, rejection: (error, id))
            }
            do {
                let command = try WireDecoder().decode(CommandMessage.self, from: envelope.data)
                // Names are checked before the command is kept anywhere: a 15 MiB id, type or key is refused
                // here, not after waiting in the queue.
                do throws(RunnerError) {
                    try command.validateNames()
                } catch {
                    return refuse(error, command.id.utf8.count <= CommandMessage.maxNameBytes ? command.id : nil)
                }
                // Weighed by what the parsed params keep in memory (a line of small values takes ~12x its size
                // once parsed) plus the whole line: metadata, signature and every other field count too (30
                // queued 15 MiB lines with the bulk in metadata once took the runner to 451 MB).
                let weight = command.params.retainedBytesEstimate + bytes.count + 512
                guard let announced else {
                    queue.push(.command(command, rawParams: envelope.rawParams, size: weight, content: nil))
                    return nil
                }
                // Raw content is held whole until its command runs, so it has the line's limit.
                guard announced <= config.maxLineBytes else {
                    return refuse(
                        .invalid(
                            "\(command.type) \(command.id): content_length \(announced) exceeds the limit of "
                                + "\(config.maxLineBytes) bytes; the content was read and dropped"
                        ),
                        command.id
                    )
                }
                return PendingBody(
                    length: announced,
                    command: (command, envelope.rawParams, weight),
                    rejection: nil
                )
            } catch {
                return refuse(
                    .invalid("CMD: data.\(RunnerError.echo(error.description, maxBytes: 4096))"),
                    envelope.data["id"]?.stringValue.flatMap {
                        $0.utf8.count <= CommandMessage.maxNameBytes ? $0 : nil
                    }
                )
            }
        case .cancel:
            guard let id = envelope.data["command_id"]?.stringValue, !id.isEmpty else {
                queue.push(.reject(.invalid("CANCEL needs data.command_id (a non-empty string)"), commandID: nil))
                return nil
            }
            do throws(RunnerError) {
                // An id the runner could never have served is refused before it is kept anywhere (a CANCEL with
                // a 10 MiB id must not stay in memory).
                try CommandMessage.checkName(id, "command_id")
                if let key = config.verifyKey {
                    try verifyCancelSignature(id: id, signature: envelope.data["signature"]?.stringValue, key: key)
                }
            } catch {
                let shown = id.utf8.count <= CommandMessage.maxNameBytes ? id : nil
                queue.push(.reject(RunnerError(error.code, "CANCEL: " + error.message), commandID: shown))
                return nil
            }
            cancel(id: id)
        case .ready, .event, .done, .error, .exit:
            queue.push(
                .reject(.invalid("message type \(envelope.type) is sent by runners, not to them"), commandID: nil)
            )
        default:
            queue.push(
                .reject(
                    .invalid(
                        "unknown message type \"\(RunnerError.echo(envelope.type.rawValue))\" (this runner accepts CMD and CANCEL)"
                    ),
                    commandID: nil
                )
            )
        }
        return nil
    }
}
