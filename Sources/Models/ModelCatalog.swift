import Foundation
import NN

// MARK: - The model list by name

extension ModelName {
    /// The model named `text`; throws `ModelNameError` listing the known names otherwise.
    public init(parsing text: String) throws {
        guard let name = ModelName(rawValue: text) else { throw ModelNameError.unknown(text) }
        self = name
    }

    /// The models of a comma-separated list ("c4cnn,cnn"), in order; throws for an unknown or a repeated name.
    public static func list(parsing text: String) throws -> [ModelName] {
        let names = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let models = try names.map { try ModelName(parsing: $0) }
        guard Set(models).count == models.count else { throw ModelNameError.repeated(text) }
        return models
    }

    /// A freshly initialised model with batch norm after every convolution and dropout 0.2 in the head when
    /// `batchNorm` (the strong recipe's layout), else the original layout.
    public func make(batchNorm: Bool, seed: UInt64 = 0) -> Module {
        batchNorm ? makeStrong(seed: seed) : make(seed: seed)
    }

    /// The kind of an experiment model, or nil for any other module.
    public static func of(_ model: Module) -> ModelName? {
        switch model {
        case is C4CNN: return .c4cnn
        case is D4CNN: return .d4cnn
        case is CNN: return .cnn
        case is C8CNN: return .c8cnn
        case is C16CNN: return .c16cnn
        case is D8CNN: return .d8cnn
        default: return nil
        }
    }

    /// The comma-separated names, for messages: "c4cnn, cnn, d4cnn, c8cnn, c16cnn, d8cnn".
    public static var known: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// A model name that is not one of `ModelName`'s.
public enum ModelNameError: Error, CustomStringConvertible, Equatable {
    case unknown(String)
    case repeated(String)

    public var description: String {
        switch self {
        case .unknown(let name): return "unknown model '\(name)' (\(ModelName.known))"
        case .repeated(let list): return "a model is listed twice in '\(list)'"
        }
    }
}
