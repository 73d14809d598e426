import Autograd
import Foundation
import NN
import Train

// check-messages CALL: makes one named call with a wrong shape or argument, so that a test can read the message it
// stops with from a release build (where `precondition` would drop it). Exits with status 2 for an unknown call and
// 0 when the call, against expectation, returns.

/// The bad calls by name; each should stop the program with a message naming the op and the shapes involved.
let calls: [String: () -> Void] = [
    "conv2d-channels": {
        _ = Tensor<Float>(zeros: [2, 3, 8, 8]).conv2d(weight: Tensor(zeros: [4, 1, 3, 3]))
    },
    "conv2d-stride": {
        _ = Tensor<Float>(zeros: [1, 1, 5, 5]).conv2d(weight: Tensor(zeros: [2, 1, 3, 3]), stride: (0, 1))
    },
    "matmul": { _ = Tensor<Float>(zeros: [2, 3]).matmul(Tensor(zeros: [4, 5])) },
    "linear": { _ = Tensor<Float>.linear(Tensor(zeros: [2, 3]), weight: Tensor(zeros: [4, 5])) },
    "broadcast": { _ = Tensor<Float>(zeros: [2, 3]) + Tensor<Float>(zeros: [4]) },
    "cross-entropy-target": { _ = Tensor<Float>(zeros: [2, 3]).crossEntropy(targets: [1, 5]) },
    "item": { _ = Tensor<Float>(zeros: [2, 2]).item },
    "backward-twice": {
        let x = Tensor<Float>(zeros: [2, 3]).requiringGradient()
        let y = (x * x).sum()
        y.backward()
        y.backward()
    },
    "reshape": { _ = Tensor<Float>(zeros: [2, 3]).reshaped([4]) },
    "permute": { _ = Tensor<Float>(zeros: [2, 3]).permuted([0, 0]) },
    "slice": { _ = Tensor<Float>(zeros: [2, 3]).sliced(lower: [0, 0], upper: [2, 4]) },
    "maxpool-kernel": { _ = Tensor<Float>(zeros: [1, 1, 4, 4]).maxPool2d(kernel: (0, 2)) },
    "rot90-axes": { _ = Tensor<Float>(zeros: [2, 3]).rotated90(1, axes: (1, 1)) },
    "gathered-index": { _ = Tensor<Float>(zeros: [4]).gathered([0, 4], shape: [2]) },
    "gathered-negative-index": { _ = Tensor<Float>(zeros: [4]).gathered([-1, 2], shape: [2]) },
    "concat": { _ = Tensor<Float>.concatenated([Tensor(zeros: [2, 3]), Tensor(zeros: [2, 4])], axis: 0) },
    "dropout": { _ = Dropout(1.5) },
    "data-loader": {
        _ = DataLoader(ImageDataset(images: [0, 0, 0, 0], labels: [1], height: 2, width: 2), batchSize: 0)
    },
]

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count == 1, let call = calls[arguments[0]] else {
    FileHandle.standardError.write(Data("usage: check-messages CALL, one of \(calls.keys.sorted().joined(separator: ", "))\n".utf8))
    exit(2)
}
call()
FileHandle.standardError.write(Data("check-messages: \(arguments[0]) returned instead of stopping\n".utf8))
exit(0)
