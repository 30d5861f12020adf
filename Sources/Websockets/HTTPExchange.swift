/// One HTTP request waiting for its response; service thread only.
final class HTTPExchange {
    let wsi: OpaquePointer
    let method: String
    var response: HTTPResponse?
    init(wsi: OpaquePointer, method: String) {
        self.wsi = wsi
        self.method = method
    }
}
