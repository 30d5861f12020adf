import ServiceCLI
import Foundation
import TrafficModel

/// One-line human summaries of merged results for the operator commands.
enum ResultFormatting {
    /// The rule used to highlight alerts (the service's default; `ALERT_LEVEL` changes it).
    static let alertRule = AlertRule(minimumLevel: env("ALERT_LEVEL").flatMap(RiskLevel.init(name:)) ?? .high)

    static func summary(_ json: [UInt8], highlightAlerts: Bool) -> String {
        let preview = String(decoding: json.prefix(80), as: UTF8.self)
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(json))
        } catch {
            return "(unreadable result, not JSON (\(error.localizedDescription)): \(preview))"
        }
        guard let object = parsed as? [String: Any] else {
            return "(unreadable result, not a JSON object: \(preview))"
        }
        let camera = object["cameraId"].map { "\($0)" } ?? "?"
        let time = object["timestamp"] as? String ?? "?"
        let risk = object["riskAssessment"] as? [String: Any]
        let level = risk?["maxRiskLevel"] as? String ?? "?"
        let dangerous = risk?["hasDangerousDriving"] as? Bool ?? false
        let objects = (object["detectedObjects"] as? [Any])?.count ?? 0
        let model = object["llmModel"] as? String ?? "-"
        let request = object["requestId"] as? String ?? "?"
        let missing = object["detectionMissing"] as? Bool == true ? " (detection missing)" : ""
        let isAlert = alertRule.isAlert(level: RiskLevel(name: level) ?? .none, dangerousDriving: dangerous)
        var line = "camera \(camera)  \(time)  risk=\(level)\(dangerous ? " DANGEROUS-DRIVING" : "")  objects=\(objects)\(missing)  model=\(model)  id=\(request)"
        if highlightAlerts && isAlert { line = "\u{1B}[1;31m" + line + "\u{1B}[0m" }
        return line
    }
}
