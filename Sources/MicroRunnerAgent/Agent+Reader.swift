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
            let n = buffer.withUnsafeMutableBytes { read(config.inputFD, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                if n < 0 && config.verbose { log("stdin: \(errnoText(errno))") }
                if let last = framer.finish() { handle(last) }
                queue.push(.endOfInput)
                return
            }
            let frames = buffer.withUnsafeBufferPointer { framer.append(UnsafeBufferPointer(rebasing: $0[0..<n])) }
            for frame in frames { handle(frame) }
        }
    }

    func handle(_ frame: LineFramer.Frame) {
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
        case .line(let bytes):
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }  // blank line: nothing to answer
            handleLine(bytes)
        }
    }

    func handleLine(_ bytes: [UInt8]) {
        let envelope: Envelope
        do {
            envelope = try Envelope.parse(line: bytes, keepRawParams: keepRawParams)
        } catch {
            queue.push(.reject(error, commandID: nil))
            return
        }
        switch envelope.type {
        case .command:
            do {
                let command = try WireDecoder().decode(CommandMessage.self, from: envelope.data)
                // Names are checked before the command is kept anywhere: a 15 MiB id, type or key is refused
                // here, not after waiting in the queue.
                do throws(RunnerError) {
                    try command.validateNames()
                } catch {
                    let id = command.id.utf8.count <= CommandMessage.maxNameBytes ? command.id : nil
                    queue.push(.reject(error, commandID: id))
                    return
                }
                // Weighed by what the parsed params keep in memory (a line of small values takes ~12x its size
                // once parsed) plus the whole line: metadata, signature and every other field count too (30
                // queued 15 MiB lines with the bulk in metadata once took the runner to 451 MB).
                let weight = command.params.retainedBytesEstimate + bytes.count + 512
                queue.push(.command(command, rawParams: envelope.rawParams, size: weight))
            } catch {
                queue.push(
                    .reject(
                        .invalid("CMD: data.\(RunnerError.echo(error.description, maxBytes: 4096))"),
                        commandID: envelope.data["id"]?.stringValue.flatMap {
                            $0.utf8.count <= CommandMessage.maxNameBytes ? $0 : nil
                        }
                    )
                )
            }
        case .cancel:
            guard let id = envelope.data["command_id"]?.stringValue, !id.isEmpty else {
                queue.push(.reject(.invalid("CANCEL needs data.command_id (a non-empty string)"), commandID: nil))
                return
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
                return
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
    }
}
