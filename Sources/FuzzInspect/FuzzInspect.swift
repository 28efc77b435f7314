import FuzzSupport

/// libFuzzer entry point of the FuzzInspect target (see FuzzTargets.inspect and tools/fuzz.sh).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTargets.inspect(data, size)
}

@main
struct FuzzInspectMain {
    static func main() { FuzzDriver.main(fuzzTestOneInput) }
}
