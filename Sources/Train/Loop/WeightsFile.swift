import Autograd
import Foundation
import NN

/// What a parameter file holds, recognised from its metadata and tensor names: an exported plain model, a training
/// checkpoint or a state dict (saved here or by PyTorch).
public struct WeightsFileKind: Sendable, Equatable {
    public enum Form: String, Sendable {
        /// An exported plain model (metadata format=exported): it carries its own architecture.
        case exported
        /// A training checkpoint (metadata format=checkpoint, or tensors named `model.<name>`).
        case checkpoint
        /// A state dict: tensors named as the model's parameters.
        case stateDict = "state dict"
    }

    public let form: Form
    /// The model named in the metadata (`model`), if any.
    public let model: String?
    /// The preset named in the metadata (`preset`), if any.
    public let preset: String?
    /// Whether the file holds batch-norm statistics (`running_mean`): the parameters of a model with batch norm.
    public let hasBatchNorm: Bool

    /// The kind of `file`.
    public init(_ file: SafetensorsFile) {
        if ExportedModel.isExported(file) {
            form = .exported
        } else if file.metadata["format"] == "checkpoint" || file.entries.keys.contains(where: { $0.hasPrefix("model.") }) {
            form = .checkpoint
        } else {
            form = .stateDict
        }
        model = file.metadata["model"]
        preset = file.metadata["preset"]
        hasBatchNorm = file.entries.keys.contains { $0.hasSuffix("running_mean") }
    }

    /// Whether a model of the given layout is needed for these parameters: the file's batch-norm statistics decide,
    /// else `requested` (a preset's layout).
    public func needsBatchNorm(requested: Bool) -> Bool { hasBatchNorm || requested }
}
