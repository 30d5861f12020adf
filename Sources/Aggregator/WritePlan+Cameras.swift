extension WritePlan {
    /// The plan as one plan per camera, cameras in the order they first appear: each with its
    /// publishes in order, its `latest`, alerts and frames, indices renumbered. In cluster mode a
    /// camera is the write unit (its keys share one slot); a batch is written once all are.
    public func perCamera() -> [WritePlan] {
        var plans = [WritePlan](repeating: WritePlan(), count: latest.count)
        var newIndex = [Int](repeating: 0, count: publishes.count)
        for (slot, camera) in latest.enumerated() {
            var update = camera
            update.publishIndex = 0 // set below, once the camera's publishes are numbered
            plans[slot].latest = [update]
        }
        for (index, publish) in publishes.enumerated() {
            var moved = publish
            moved.cameraSlot = 0
            newIndex[index] = plans[publish.cameraSlot].publishes.count
            plans[publish.cameraSlot].publishes.append(moved)
        }
        for (slot, camera) in latest.enumerated() { plans[slot].latest[0].publishIndex = newIndex[camera.publishIndex] }
        for alert in alerts {
            var moved = alert
            moved.publishIndex = newIndex[alert.publishIndex]
            plans[publishes[alert.publishIndex].cameraSlot].alerts.append(moved)
        }
        for frame in frames {
            var moved = frame
            moved.publishIndex = newIndex[frame.publishIndex]
            plans[publishes[frame.publishIndex].cameraSlot].frames.append(moved)
        }
        return plans
    }
}
