import Foundation

// MARK: - Presets

/// A training recipe of the experiment by name: the configuration it starts from and the model layout it trains.
public enum Preset: String, CaseIterable, Sendable {
    /// The original protocol: AdamW lr 5e-5, weight decay 1e-5, batch 64, no shuffling, 51 passes; plain models.
    case original
    /// The strong recipe: AdamW lr 2e-3, weight decay 1e-4, shuffled, cosine after 100 warm-up steps, 15 epochs;
    /// models with batch norm after every convolution and dropout 0.2 in the head.
    case strong

    /// The preset named `text`; throws naming the valid names otherwise.
    public init(parsing text: String) throws {
        guard let preset = Preset(rawValue: text) else {
            throw PresetError(name: text)
        }
        self = preset
    }

    /// The recipe's configuration.
    public var configuration: TrainingConfiguration {
        switch self {
        case .original: return .original
        case .strong: return .strong
        }
    }

    /// Whether the recipe's models have batch norm (and dropout).
    public var batchNorm: Bool { self == .strong }

    /// The recipe's configuration with every setting of `overrides` that is set taking its place.
    public func configuration(_ overrides: TrainingOverrides) -> TrainingConfiguration {
        overrides.applied(to: configuration)
    }
}

/// An unknown preset name.
public struct PresetError: Error, CustomStringConvertible {
    public let name: String
    public var description: String {
        "unknown preset '\(name)' (\(Preset.allCases.map(\.rawValue).joined(separator: ", ")))"
    }
}

/// Settings given explicitly (on the command line, say) that take the place of a preset's: nil keeps the preset's.
public struct TrainingOverrides: Sendable, Equatable {
    public var epochs: Int?
    public var batchSize: Int?
    public var learningRate: Double?
    public var weightDecay: Double?
    public var shuffle: Bool?
    public var seed: UInt64?
    public var schedule: ScheduleKind?
    public var warmupSteps: Int?

    public init(epochs: Int? = nil, batchSize: Int? = nil, learningRate: Double? = nil, weightDecay: Double? = nil,
                shuffle: Bool? = nil, seed: UInt64? = nil, schedule: ScheduleKind? = nil, warmupSteps: Int? = nil) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        self.shuffle = shuffle
        self.seed = seed
        self.schedule = schedule
        self.warmupSteps = warmupSteps
    }

    /// `base` with the settings that are set replaced.
    public func applied(to base: TrainingConfiguration) -> TrainingConfiguration {
        var c = base
        if let epochs { c.epochs = epochs }
        if let batchSize { c.batchSize = batchSize }
        if let learningRate { c.learningRate = learningRate }
        if let weightDecay { c.weightDecay = weightDecay }
        if let shuffle { c.shuffle = shuffle }
        if let seed { c.seed = seed }
        if let schedule { c.schedule = schedule }
        if let warmupSteps { c.warmupSteps = warmupSteps }
        return c
    }
}

extension TrainingConfiguration {
    /// One line: "AdamW lr 5e-05, weight decay 1e-05, batch 64, no shuffling, constant schedule, 51 epochs".
    public var summary: String {
        let name: String
        switch optimizer {
        case .adamw: name = "AdamW"
        case .sgd: name = "SGD"
        case .custom: name = "a custom optimiser,"
        }
        return "\(name) lr \(learningRate), weight decay \(weightDecay), batch \(batchSize), "
            + (shuffle ? "shuffled (seed \(seed))" : "no shuffling") + ", \(schedule.rawValue) schedule"
            + (schedule == .cosine ? " (\(warmupSteps) warm-up steps)" : "") + ", \(epochs) epochs"
    }
}
