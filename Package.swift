// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "GroupConv",
    products: [
        .library(name: "Autograd", targets: ["Autograd"]),
        .library(name: "NN", targets: ["NN"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "Train", targets: ["Train"]),
    ],
    targets: [
        // System libraries: BLAS/LAPACKE (OpenBLAS on Debian) and zlib.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS",
                       providers: [.apt(["libopenblas-pthread-dev", "liblapacke-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),

        // Libraries: dependencies point one way, Autograd <- NN <- Models; Train uses Autograd and NN.
        // Float kernels in C with AVX2+FMA and AVX-512 variants chosen at run time (no unsafe flags).
        .target(name: "CKernels"),
        .target(name: "Autograd", dependencies: ["CBLAS", "CKernels"]),
        .target(name: "NN", dependencies: ["Autograd"]),
        .target(name: "Models", dependencies: ["NN"]),
        .target(name: "Train", dependencies: ["Autograd", "NN", "CZlib"]),

        // Runs the PyTorch reference cases (used by `reference-check` and the tests).
        .target(name: "ReferenceCases", dependencies: ["Autograd", "NN", "Models", "Train"]),

        // The executables' shared argument parser (used only by Examples/*; no library product uses it).
        .target(name: "CommandLineSupport", dependencies: ["Autograd"]),

        // Executables.
        .executableTarget(name: "train-c4cnn", dependencies: ["Autograd", "NN", "Models", "Train", "CommandLineSupport"],
                          path: "Examples/train-c4cnn"),
        .executableTarget(name: "train-custom", dependencies: ["Autograd", "NN", "Train"],
                          path: "Examples/train-custom"),
        .executableTarget(name: "bench", dependencies: ["Autograd", "NN", "Models", "Train", "CommandLineSupport"],
                          path: "Examples/bench"),
        .executableTarget(name: "reference-check", dependencies: ["ReferenceCases"],
                          path: "Examples/reference-check"),
        .executableTarget(name: "gradient-accuracy", dependencies: ["Autograd", "Models", "ReferenceCases",
                                                                  "CommandLineSupport"],
                          path: "Examples/gradient-accuracy"),
        .executableTarget(name: "equivariance-demo",
                          dependencies: ["Autograd", "NN", "Models", "Train", "CZlib", "CommandLineSupport"],
                          path: "Examples/equivariance-demo"),

        // Tests. `check-messages` makes one bad library call named on its command line (ReleaseMessageTests).
        .executableTarget(name: "check-messages", dependencies: ["Autograd", "NN", "Train"], path: "Tests/CheckMessages"),
        .testTarget(name: "AutogradTests", dependencies: ["Autograd"], path: "Tests/AutogradTests"),
        .testTarget(name: "NNTests", dependencies: ["Autograd", "NN", "Models", "Train", "ReferenceCases"], path: "Tests/NNTests"),
        .testTarget(name: "TrainTests", dependencies: ["Autograd", "NN", "Models", "Train"], path: "Tests/TrainTests"),
        .testTarget(name: "CommandLineSupportTests", dependencies: ["CommandLineSupport"],
                    path: "Tests/CommandLineSupportTests"),
    ]
)
