import Autograd

enum SafetensorsFileBuilder {
    /// A file with one small input and the given op.
    static func single(op: String) -> SafetensorsFile {
        SafetensorsFile(entries: ["input": SafetensorsEntry(shape: [2], values: .f32([1, 2])),
                                  "output": SafetensorsEntry(shape: [2], values: .f32([1, 2]))],
                        metadata: ["op": op])
    }
}
