// libFuzzer entry point for the JSON reader, the envelope parser and the line framer.
// Built by scripts/fuzz together with Sources/MicroRunnerProtocol (one module, no package needed).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))

    // 1. The reader must either parse or throw; what it parses must serialize and re-parse to the same tree.
    if let value = try? JSONReader(maxDepth: 64).parse(bytes) {
        let text = JSONWriter.serialize(value)
        guard let again = try? JSONReader(maxDepth: 64).parse(text), again == value else {
            fatalError("round trip changed the value")
        }
    }

    // 2. The envelope parser on the same bytes as one line, and the wire decoder on what it finds.
    if let envelope = try? Envelope.parse(line: bytes) {
        if envelope.type == .command, let cmd = try? WireDecoder().decode(CommandMessage.self, from: envelope.data) {
            _ = try? cmd.validate()
            _ = try? WireDecoder().decode(ExecParams.self, from: cmd.params)
            _ = try? WireDecoder().decode(FileWriteParams.self, from: cmd.params)
        }
        if let raw = envelope.rawParams, (try? JSONReader().parse(raw)) == nil {
            fatalError("captured params bytes are not valid JSON")
        }
    }

    // 3. The framer, fed in two pieces at a split chosen by the first byte, with a tiny limit.
    var framer = LineFramer(maxLineBytes: 64)
    let split = size == 0 ? 0 : Int(bytes[0]) % (size + 1)
    var frames = framer.append(Array(bytes[0..<split]))
    frames += framer.append(Array(bytes[split...]))
    if let last = framer.finish() { frames.append(last) }
    var total = 0
    for frame in frames {
        switch frame {
        case .line(let l):
            if l.count > 64 || l.contains(0x0A) { fatalError("framer let a bad line through") }
            total += l.count + 1
        case .oversized(let n):
            if n <= 64 { fatalError("framer called a short line oversized") }
            total += n + 1
        }
    }
    if total != size && total != size + 1 { fatalError("framer lost bytes: \(total) of \(size)") }
    return 0
}
