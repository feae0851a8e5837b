"""The reference architectures in PyTorch, as their original code defines them (state_dict keys
included): TRADES SmallCNN (without its dropout), PreAct ResNet-18 of Rice et al., and the
RobustBench WideResNet; and a generator-critic pair of the layers those do not use. Used only by
the reference tier, never by advtrain itself."""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


class SmallCNN(nn.Module):
    def __init__(self, num_classes=10, channels=1):
        super().__init__()
        act = nn.ReLU(True)
        self.feature_extractor = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(channels, 32, 3)), ("relu1", act),
            ("conv2", nn.Conv2d(32, 32, 3)), ("relu2", act), ("maxpool1", nn.MaxPool2d(2, 2)),
            ("conv3", nn.Conv2d(32, 64, 3)), ("relu3", act),
            ("conv4", nn.Conv2d(64, 64, 3)), ("relu4", act), ("maxpool2", nn.MaxPool2d(2, 2))]))
        self.classifier = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(64 * 4 * 4, 200)), ("relu1", act),
            ("fc2", nn.Linear(200, 200)), ("relu2", act),
            ("fc3", nn.Linear(200, num_classes))]))

    def forward(self, x):
        return self.classifier(self.feature_extractor(x).view(-1, 64 * 4 * 4))


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    def __init__(self, num_classes=10, channels=3):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(channels, 64, 3, 1, 1, bias=False)
        self.layer1 = self._layer(64, 1)
        self.layer2 = self._layer(128, 2)
        self.layer3 = self._layer(256, 2)
        self.layer4 = self._layer(512, 2)
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def _layer(self, planes, stride):
        layers = []
        for s in [stride, 1]:
            layers.append(PreActBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        out = F.avg_pool2d(F.relu(self.bn(out)), 4)
        return self.linear(out.view(out.size(0), -1))


class GeneratorCritic(nn.Module):
    """A perturbation generator ending in tanh and a critic reading its output, of the layers the
    reference architectures do not use: BatchNorm2d(affine=False), PReLU with one slope per
    channel and with one slope, Tanh. reference_dump.c builds the same graph."""

    def __init__(self, channels=3, size=12, num_classes=10):
        super().__init__()
        self.gen = nn.Sequential(
            nn.Conv2d(channels, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8, affine=False),
            nn.PReLU(8), nn.Conv2d(8, channels, 3, 1, 1), nn.Tanh())
        self.critic = nn.Sequential(
            nn.Conv2d(channels, 8, 3, 2, 1), nn.PReLU(), nn.Flatten(),
            nn.Linear(8 * ((size + 1) // 2) ** 2, num_classes))

    def forward(self, x):
        return self.critic(self.gen(x))


class Normalized(nn.Module):
    """Input normalisation in front of a model, as advtrain's normalize layer; its state_dict is
    the model's under "model." plus the "mean" and "std" buffers."""

    def __init__(self, model, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return self.model((x - self.mean) / self.std)
