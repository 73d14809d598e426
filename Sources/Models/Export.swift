import Autograd
import Foundation
import NN

// MARK: - Group-equivariant models to plain convolutions

extension GroupEquivariantCNN {
    /// The same function as a plain model of `Conv2d`, `ReLU`, `MaxPool2d`, `Flatten` and `Linear` layers, with this
    /// model's evaluation-mode behaviour (running batch-norm statistics, no dropout).
    ///
    /// - The lifting and group convolutions become `Conv2d` layers holding their expanded filters: a group feature
    ///   map (N, C, |G|, H, W) is carried as the image (N, C * |G|, H, W), channel `c * |G| + g`, the layout the
    ///   group layers use internally.
    /// - Each batch norm is folded into the convolution before it (its statistics are shared over the group axis,
    ///   so every one of a channel's |G| filters gets the same scale and shift).
    /// - Max pooling (1, 3, 3) over each plane of (N, C, |G|, H, W) is `MaxPool2d(3, 2, 1)` on (N, C * |G|, H, W).
    /// - Group pooling (the mean over the planes and over the |G| transforms of the 5 x 5 map) is linear, so it is
    ///   folded into the first linear layer of the head: its weight, seen as (out, C, 5, 5), is averaged over the
    ///   group's transforms and repeated over the planes with a factor 1 / |G|, giving Linear(C * |G| * 25, out)
    ///   on the flattened (N, C * |G|, 5, 5) map.
    ///
    /// The result's logits equal this model's (in evaluation mode) up to float rounding.
    public func exported() throws -> PlainModel {
        try withoutGradients {
            let order = group.order
            var layers: [Module] = []
            var pendingConv: (weight: Tensor<Float>, bias: Tensor<Float>?, padding: Int)?
            func flush() {
                if let p = pendingConv {
                    layers.append(Conv2d.holding(weight: p.weight, bias: p.bias, padding: p.padding))
                    pendingConv = nil
                }
            }
            // Lifting convolution (+ batch norm and ReLU in the strong variant).
            let lifted = filters(liftingconv)
            pendingConv = (lifted.weight, lifted.bias, liftingconv.padding)
            if let liftingNorm {
                let folded = liftingNorm.fold(weight: lifted.weight, bias: lifted.bias)
                pendingConv = (folded.weight, folded.bias, liftingconv.padding)
                flush()
                layers.append(ReLU())
            }
            for (index, layer) in groupconvEncoder.layers.enumerated() {
                switch layer {
                case let conv as GroupFilterConv2d:
                    flush()
                    let expanded = filters(conv)
                    pendingConv = (expanded.weight, expanded.bias, conv.padding)
                case let norm as BatchNorm:
                    guard let p = pendingConv else {
                        throw ExportError("groupconv_encoder.\(index): a batch norm that does not follow a convolution")
                    }
                    let folded = norm.fold(weight: p.weight, bias: p.bias)
                    pendingConv = (folded.weight, folded.bias, p.padding)
                case is ReLU:
                    flush()
                    layers.append(ReLU())
                case let pool as MaxPool3d:
                    flush()
                    guard pool.kernelSize.0 == 1, pool.stride.0 == 1, pool.padding.0 == 0,
                          pool.kernelSize.1 == pool.kernelSize.2, pool.stride.1 == pool.stride.2,
                          pool.padding.1 == pool.padding.2 else {
                        throw ExportError("groupconv_encoder.\(index): max pooling across planes has no plain form")
                    }
                    layers.append(MaxPool2d(kernelSize: pool.kernelSize.1, stride: pool.stride.1,
                                            padding: pool.padding.1))
                default:
                    throw ExportError("groupconv_encoder.\(index): \(type(of: layer)) cannot be exported")
                }
            }
            flush()
            layers.append(Flatten())

            // The head, with group pooling folded into its first linear layer and dropout (identity) left out.
            var poolingFolded = false
            for (index, layer) in head.layers.enumerated() {
                switch layer {
                case is Dropout:
                    continue
                case let linear as Linear where !poolingFolded:
                    layers.append(try foldGroupPooling(into: linear, order: order))
                    poolingFolded = true
                case let linear as Linear:
                    layers.append(Linear.holding(weight: linear.weight.value.detached(),
                                                 bias: linear.bias?.value.detached()))
                case is ReLU:
                    layers.append(ReLU())
                default:
                    throw ExportError("head.\(index): \(type(of: layer)) cannot be exported")
                }
            }
            let model = PlainModel(layers)
            model.eval()
            return model
        }
    }

    /// Expanded filters of a lifting or group convolution, outside any recording.
    private func filters(_ conv: GroupFilterConv2d) -> (weight: Tensor<Float>, bias: Tensor<Float>?) {
        let (w, b) = conv.expandedFilters()
        return (w.detached(), b?.detached())
    }

    /// Linear(C * S * S, out) after group pooling -> Linear(C * |G| * S * S, out) on the map before it.
    private func foldGroupPooling(into linear: Linear, order: Int) throws -> Linear {
        let outputs = linear.outFeatures, channels = groupconvEncoder.layers.compactMap { $0 as? GroupFilterConv2d }
            .last?.outChannels ?? 0
        let area = channels > 0 ? linear.inFeatures / channels : 0
        let spatial = Int(Double(area).squareRoot().rounded())
        guard channels > 0, spatial * spatial * channels == linear.inFeatures else {
            throw ExportError("head: Linear(\(linear.inFeatures), \(outputs)) does not follow the group pooling")
        }
        let w = linear.weight.value.detached().reshaped([outputs, channels, spatial, spatial])
        // Group pooling averages over the elements exact on the grid, E (all of C4 and D4): sum over e in E of
        // T_e^T W = sum over e of T_e W (the transposes of the transforms are their inverses, and E is a subgroup).
        let exact = group.gridElements
        let symmetrised = exact.map { group.transformPlanes(w, by: $0) }
            .dropFirst().reduce(w) { $0 + $1 } * (1 / Float(exact.count * order))
        let repeated = symmetrised.unsqueezed(2).expanded(to: [outputs, channels, order, spatial, spatial])
        return Linear.holding(weight: repeated.reshaped([outputs, channels * order * spatial * spatial]),
                              bias: linear.bias?.value.detached())
    }
}

// MARK: - The plain CNN (batch norm folded)

extension CNN {
    /// The same function with every batch norm folded into its convolution and dropout left out (evaluation mode).
    public func exported() throws -> PlainModel {
        try withoutGradients {
            var layers: [Module] = []
            func copy(_ conv: Conv2d, _ norm: BatchNorm?) {
                let w = conv.weight.value.detached(), b = conv.bias?.value.detached()
                let (weight, bias) = norm.map { $0.fold(weight: w, bias: b) } ?? (w, b)
                layers.append(Conv2d.holding(weight: weight, bias: bias, stride: conv.stride, padding: conv.padding))
            }
            copy(firstConv, firstNorm)
            layers.append(ReLU())
            let convLayers = convs.layers
            for (index, layer) in convLayers.enumerated() {
                switch layer {
                case let conv as Conv2d:
                    copy(conv, convLayers.dropFirst(index + 1).first as? BatchNorm)
                case is BatchNorm:
                    continue
                case is ReLU:
                    layers.append(ReLU())
                case let pool as MaxPool2d:
                    layers.append(MaxPool2d(kernelSize: pool.kernelSize, stride: pool.stride, padding: pool.padding))
                default:
                    throw ExportError("convs.\(index): \(type(of: layer)) cannot be exported")
                }
            }
            layers.append(Flatten())
            for (index, layer) in head.layers.enumerated() {
                switch layer {
                case is Dropout: continue
                case let linear as Linear:
                    layers.append(Linear.holding(weight: linear.weight.value.detached(),
                                                 bias: linear.bias?.value.detached()))
                case is ReLU: layers.append(ReLU())
                default: throw ExportError("head.\(index): \(type(of: layer)) cannot be exported")
                }
            }
            let model = PlainModel(layers)
            model.eval()
            return model
        }
    }
}

// MARK: - By name

extension ModelName {
    /// The plain export of `model` (a model of this kind), or an error for a model of another kind.
    public func export(_ model: Module) throws -> PlainModel {
        switch (self, model) {
        case (.c4cnn, let m as C4CNN): return try m.exported()
        case (.d4cnn, let m as D4CNN): return try m.exported()
        case (.c8cnn, let m as C8CNN): return try m.exported()
        case (.c16cnn, let m as C16CNN): return try m.exported()
        case (.d8cnn, let m as D8CNN): return try m.exported()
        case (.cnn, let m as CNN): return try m.exported()
        default: throw ExportError("cannot export a \(type(of: model)) as \(rawValue)")
        }
    }

    /// The model of this kind with `preset`'s layout ("strong": batch norm and dropout, else the original).
    public func make(preset: String, seed: UInt64 = 0) -> Module {
        preset == "strong" ? makeStrong(seed: seed) : make(seed: seed)
    }

    /// Writes `model`'s plain export to `url` with metadata format=exported, model, preset.
    @discardableResult
    public func saveExport(of model: Module, preset: String, to url: URL) throws -> PlainModel {
        let exported = try export(model)
        try ExportedModel.save(exported, to: url, metadata: ["model": rawValue, "preset": preset])
        return exported
    }
}
