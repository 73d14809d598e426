import Autograd
import Foundation

// MARK: - Model summary

/// A table of a model's layers as torchinfo prints it: every module of the tree with its dotted name and type, the
/// shape of its output for one forward pass, its own parameter count, and the totals.
///
/// ```swift
/// print(try C4CNN().summary(inputShape: [8, 1, 33, 33]))
/// ```
public struct ModelSummary: CustomStringConvertible, Sendable {
    /// One module of the tree.
    public struct Row: Sendable, Equatable {
        /// The dotted name ("" for the model itself, `groupconv_encoder.0`).
        public var name: String
        /// The module's type name (`GroupConv2d`).
        public var type: String
        /// Depth in the tree: 0 for the model, 1 for its children, ...
        public var depth: Int
        /// The shape of the module's output in the summarised forward pass (its first call, when it runs several
        /// times); nil for a module that did not run.
        public var outputShape: [Int]?
        /// The number of scalars in the module's own parameters (not its children's).
        public var parameterCount: Int
        /// True for the last child of its parent (drawn with `└─`).
        public var isLastChild: Bool
    }

    /// The input shape the forward pass ran on.
    public var inputShape: [Int]
    /// The modules, parents before their children, in declaration order.
    public var rows: [Row]
    /// Learnable scalars of the whole model (each parameter counted once).
    public var totalParameters: Int
    /// Scalars of the buffers (running statistics), saved with the parameters but not learned.
    public var bufferScalars: Int

    /// The table, torchinfo's layout: a tree of `name (Type)`, output shape, parameter count, then the totals and
    /// the parameters' size in float32.
    public var description: String {
        func grouped(_ n: Int) -> String {
            let digits = Array(String(n))
            var out = ""
            for (i, d) in digits.enumerated() {
                if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
                out.append(d)
            }
            return out
        }
        // Tree prefixes: "│ " where an ancestor has later siblings, "  " where it was the last one.
        var openAncestors: [Bool] = []
        var labels: [String] = []
        for row in rows {
            if row.depth == 0 {
                labels.append(row.type)
                openAncestors = []
                continue
            }
            openAncestors = Array(openAncestors.prefix(row.depth - 1))
            let indent = openAncestors.map { $0 ? "│ " : "  " }.joined()
            let localName = row.name.split(separator: ".").last ?? ""
            labels.append(indent + (row.isLastChild ? "└─" : "├─") + "\(localName) (\(row.type))")
            openAncestors.append(!row.isLastChild)
        }
        let shapes = rows.map { $0.outputShape.map { "\($0)" } ?? "--" }
        let counts = rows.map { $0.parameterCount > 0 ? grouped($0.parameterCount) : "--" }
        let nameWidth = max(labels.map(\.count).max() ?? 0, "Layer (type)".count) + 2
        let shapeWidth = max(shapes.map(\.count).max() ?? 0, "Output Shape".count) + 2
        let countWidth = max(counts.map(\.count).max() ?? 0, "Param #".count)
        func pad(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(width - s.count, 0)) }
        func padLeft(_ s: String, _ width: Int) -> String {
            String(repeating: " ", count: max(width - s.count, 0)) + s
        }
        let rule = String(repeating: "=", count: nameWidth + shapeWidth + countWidth)
        let header = pad("Layer (type)", nameWidth) + pad("Output Shape", shapeWidth) + padLeft("Param #", countWidth)
        var lines = [rule, header, rule]
        for i in rows.indices {
            lines.append(pad(labels[i], nameWidth) + pad(shapes[i], shapeWidth) + padLeft(counts[i], countWidth))
        }
        lines += [rule,
                  "Input shape: \(inputShape)",
                  "Total params: \(grouped(totalParameters))",
                  "Trainable params: \(grouped(totalParameters))",
                  "Buffers (not trained): \(grouped(bufferScalars))",
                  String(format: "Params size (MB): %.2f", Double(4 * (totalParameters + bufferScalars)) / 1e6),
                  rule]
        return lines.joined(separator: "\n")
    }
}

extension Module {
    /// Runs one forward pass on zeros of `inputShape` (in evaluation mode, nothing recorded for gradients; the mode
    /// is restored afterwards) and tabulates every module: its output shape, its own parameter count, the totals.
    /// Throws what the forward pass throws (a `ShapeError` for an input the model cannot take).
    ///
    /// Output shapes are seen for modules called as functions (`try layer(x)`), as ``Sequential`` and the models
    /// do; a module whose `forward` is called directly shows `--`.
    public func summary(inputShape: [Int]) throws -> ModelSummary {
        let recorder = SummaryRecorder()
        let wasTraining = isTraining
        setTraining(false)
        defer { setTraining(wasTraining) }
        let previous = SummaryRecorder.current
        SummaryRecorder.current = recorder
        defer { SummaryRecorder.current = previous }
        _ = try withoutGradients { try self(Tensor<Float>(zeros: inputShape)) }

        var rows: [ModelSummary.Row] = []
        var seen = Set<ObjectIdentifier>()
        func visit(_ module: Module, name: String, depth: Int, isLast: Bool) {
            guard seen.insert(ObjectIdentifier(module)).inserted else { return }
            rows.append(.init(name: name, type: "\(type(of: module))", depth: depth,
                              outputShape: recorder.shapes[ObjectIdentifier(module)],
                              parameterCount: module.localParameters.reduce(0) { $0 + $1.parameter.value.count },
                              isLastChild: isLast))
            let children = module.children
            for (index, child) in children.enumerated() {
                visit(child.module, name: name.isEmpty ? child.name : "\(name).\(child.name)", depth: depth + 1,
                      isLast: index == children.count - 1)
            }
        }
        visit(self, name: "", depth: 0, isLast: true)
        return ModelSummary(inputShape: inputShape, rows: rows, totalParameters: parameterCount,
                            bufferScalars: namedBuffers.reduce(0) { $0 + $1.buffer.value.count })
    }
}

/// Collects the output shape of every module called during a summary's forward pass (per thread).
final class SummaryRecorder {
    private(set) var shapes: [ObjectIdentifier: [Int]] = [:]

    func record(_ module: Module, output: Tensor<Float>) {
        let key = ObjectIdentifier(module)
        if shapes[key] == nil { shapes[key] = output.shape }
    }

    private static let key = "NN.SummaryRecorder"

    /// The recorder of the summary running on this thread, if any.
    static var current: SummaryRecorder? {
        get { Thread.current.threadDictionary[key] as? SummaryRecorder }
        set { Thread.current.threadDictionary[key] = newValue }
    }
}
