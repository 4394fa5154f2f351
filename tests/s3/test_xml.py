"""S3 XML: error bodies, the answers the storage layer reads, the bodies it sends."""

from __future__ import annotations

import pickle
import xml.etree.ElementTree as ET

import pytest

from trio_s3rpc.s3 import xml as s3xml
from trio_s3rpc.s3.xml import S3Error

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'

ERROR_BODY = b"""<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>AccessDenied</Code>
  <Message>Access Denied</Message>
  <RequestId>656c76696e6727732072657175657374</RequestId>
  <HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId>
</Error>"""

LIST_V2 = f"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult {NS}>
  <Name>example-bucket</Name>
  <Prefix>photos/</Prefix>
  <KeyCount>3</KeyCount>
  <MaxKeys>2</MaxKeys>
  <Delimiter>/</Delimiter>
  <IsTruncated>true</IsTruncated>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <Contents>
    <Key>photos/2006/January/sample.jpg</Key>
    <LastModified>2009-10-12T17:50:30.000Z</LastModified>
    <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag>
    <Size>434234</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>photos/ trailing space </Key>
    <LastModified>2024-02-29T12:00:00Z</LastModified>
    <ETag>"abc-2"</ETag>
    <Size>0</Size>
  </Contents>
  <CommonPrefixes><Prefix>photos/2006/February/</Prefix></CommonPrefixes>
</ListBucketResult>""".encode()


# --- S3Error and error bodies ---------------------------------------------


def test_s3error_text_and_fields() -> None:
    error = S3Error("PutObject", 403, "AccessDenied", "Access Denied", "REQ1")
    assert str(error) == "PutObject failed: AccessDenied: Access Denied (HTTP 403)"
    assert (error.operation, error.status, error.code, error.message, error.request_id) == (
        "PutObject",
        403,
        "AccessDenied",
        "Access Denied",
        "REQ1",
    )
    assert "AccessDenied" in repr(error)
    assert str(S3Error("GetObject", 0, "ConnectionError", "refused")) == (
        "GetObject failed: ConnectionError: refused"
    )


def test_s3error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(S3Error("HeadObject", 404, "NoSuchKey", "gone", "R")))
    assert (error.operation, error.status, error.code, error.request_id) == (
        "HeadObject",
        404,
        "NoSuchKey",
        "R",
    )


def test_error_from_xml_body() -> None:
    error = s3xml.error_from_response("GetObject", "GET", 403, ERROR_BODY, "header-id")
    assert (error.status, error.code, error.message) == (403, "AccessDenied", "Access Denied")
    assert error.request_id == "656c76696e6727732072657175657374"


def test_error_body_with_namespace() -> None:
    body = f"<Error {NS}><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
    error = s3xml.error_from_response("PutObject", "PUT", 503, body.encode(), "hdr")
    assert (error.code, error.message, error.request_id) == ("SlowDown", "Reduce your rate", "hdr")


@pytest.mark.parametrize(
    ("operation", "status", "code"),
    [
        ("HeadObject", 404, "NoSuchKey"),
        ("HeadBucket", 404, "NoSuchBucket"),
        ("HeadObject", 403, "AccessDenied"),
        ("HeadObject", 412, "PreconditionFailed"),
        ("HeadObject", 503, "ServiceUnavailable"),
        ("HeadObject", 418, "HTTP418"),
    ],
)
def test_bodiless_errors_take_their_code_from_the_status(
    operation: str, status: int, code: str
) -> None:
    error = s3xml.error_from_response(operation, "HEAD", status, b"", "rid")
    assert (error.status, error.code, error.request_id) == (status, code, "rid")
    assert error.message


def test_non_xml_error_body_becomes_the_message() -> None:
    html = b"<html><body><h1>502 Bad Gateway</h1>\n  nginx</body></html>"
    error = s3xml.error_from_response("GetObject", "GET", 502, html)
    assert error.code == "BadGateway"
    assert "502 Bad Gateway" in error.message


def test_parse_error_body_ignores_other_documents() -> None:
    assert s3xml.parse_error_body(LIST_V2) is None
    assert s3xml.parse_error_body(b"not xml at all") is None
    assert s3xml.parse_error_body(b"<Error><Code>x") is None


# --- answers --------------------------------------------------------------


def test_parse_list_objects_v2() -> None:
    result = s3xml.parse_list_objects_v2(LIST_V2)
    assert result.is_truncated is True
    assert result.next_continuation_token == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="
    assert result.key_count == 3
    assert result.common_prefixes == ["photos/2006/February/"]
    first, second = result.contents
    assert first == s3xml.ObjectEntry(
        key="photos/2006/January/sample.jpg",
        size=434234,
        last_modified=1255369830,
        etag='"fba9dede5f27731c9771645a39863328"',
        storage_class="STANDARD",
    )
    assert second.key == "photos/ trailing space "
    assert (second.size, second.last_modified, second.storage_class) == (0, 1709208000, "")


def test_parse_list_objects_v2_empty_and_url_encoded() -> None:
    empty = f"<ListBucketResult {NS}><Name>b</Name><KeyCount>0</KeyCount>"
    empty += "<IsTruncated>false</IsTruncated></ListBucketResult>"
    result = s3xml.parse_list_objects_v2(empty.encode())
    assert (result.contents, result.common_prefixes, result.is_truncated) == ([], [], False)
    assert result.next_continuation_token == ""

    encoded = (
        "<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
        "<Contents><Key>a+b%2Bc%0A%C3%BC</Key><Size>1</Size></Contents>"
        "<CommonPrefixes><Prefix>dir%20x/</Prefix></CommonPrefixes></ListBucketResult>"
    )
    result = s3xml.parse_list_objects_v2(encoded.encode())
    assert [entry.key for entry in result.contents] == ["a b+c\nü"]
    assert result.common_prefixes == ["dir x/"]
    assert result.key_count == 2  # no <KeyCount>: counted


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<ListBucketResult><Contents>",
        b"garbage",
        b"<InitiateMultipartUploadResult/>",
        b"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
        b"<ListBucketResult><Contents><Key>k</Key><Size>big</Size></Contents></ListBucketResult>",
    ],
)
def test_malformed_answers_raise_s3error(body: bytes) -> None:
    with pytest.raises(S3Error) as caught:
        s3xml.parse_list_objects_v2(body)
    assert caught.value.code == "MalformedResponse"
    assert caught.value.operation == "ListObjectsV2"


def test_parse_initiate_multipart() -> None:
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult {NS}>
  <Bucket>example-bucket</Bucket><Key>example-object</Key>
  <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
</InitiateMultipartUploadResult>"""
    upload_id = s3xml.parse_initiate_multipart(body.encode())
    assert upload_id == "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"
    with pytest.raises(S3Error, match="MalformedResponse"):
        s3xml.parse_initiate_multipart(b"<InitiateMultipartUploadResult/>")


def test_parse_copy_and_complete_results() -> None:
    copy = f"""<CopyObjectResult {NS}>
  <LastModified>2009-10-28T22:32:00.000Z</LastModified>
  <ETag>"9b2cf535f27731c974343645a3985328"</ETag>
</CopyObjectResult>"""
    assert s3xml.parse_copy_result(copy.encode()) == (
        '"9b2cf535f27731c974343645a3985328"',
        1256769120,
    )
    complete = f"""   \n  \n<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUploadResult {NS}>
  <Location>http://Example-Bucket.s3.region.amazonaws.com/Example-Object</Location>
  <Bucket>Example-Bucket</Bucket><Key>Example-Object</Key>
  <ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag>
</CompleteMultipartUploadResult>"""
    etag = s3xml.parse_complete_multipart(complete.encode())
    assert etag == '"3858f62230ac3c915f300c664312c11f-9"'


def test_a_complete_answer_with_an_empty_etag_answers_none() -> None:
    # What Ceph RGW 16.2.15 answers (captured): the caller must learn the ETag otherwise.
    complete = (
        '<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult xmlns="http://s3.'
        'amazonaws.com/doc/2006-03-01/"><Location>http://127.0.0.1:32971/acl-bucket/scratch/m'
        "</Location><Bucket>acl-bucket</Bucket><Key>scratch/m</Key><ETag></ETag>"
        "</CompleteMultipartUploadResult>"
    )
    assert s3xml.parse_complete_multipart(complete.encode()) == ""
    assert s3xml.parse_complete_multipart(b"<CompleteMultipartUploadResult/>") == ""


def test_error_inside_a_200_copy_answer_raises() -> None:
    body = (
        b" " * 2000
        + b"""<?xml version="1.0" encoding="UTF-8"?>

<Error>
  <Code>InternalError</Code>
  <Message>We encountered an internal error. Please try again.</Message>
  <RequestId>656c76696e6727732072657175657374</RequestId>
</Error>"""
    )
    with pytest.raises(S3Error) as caught:
        s3xml.parse_complete_multipart(body)
    error = caught.value
    assert (error.operation, error.status, error.code) == (
        "CompleteMultipartUpload",
        200,
        "InternalError",
    )
    assert error.request_id == "656c76696e6727732072657175657374"


def test_parse_list_parts() -> None:
    body = f"""<ListPartsResult {NS}>
  <Bucket>example-bucket</Bucket><Key>example-object</Key>
  <UploadId>XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA</UploadId>
  <PartNumberMarker>1</PartNumberMarker>
  <NextPartNumberMarker>3</NextPartNumberMarker>
  <MaxParts>2</MaxParts>
  <IsTruncated>true</IsTruncated>
  <Part>
    <PartNumber>2</PartNumber>
    <LastModified>2010-11-10T20:48:34.000Z</LastModified>
    <ETag>"7778aef83f66abc1fa1e8477f296d394"</ETag>
    <Size>10485760</Size>
  </Part>
  <Part>
    <PartNumber>3</PartNumber>
    <LastModified>2010-11-10T20:48:33.000Z</LastModified>
    <ETag>"aaaa18db4cc2f85cedef654fccc4a4x8"</ETag>
    <Size>10485760</Size>
  </Part>
</ListPartsResult>"""
    result = s3xml.parse_list_parts(body.encode())
    assert result.upload_id == "XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA"
    assert result.is_truncated is True
    assert result.next_part_number_marker == 3
    assert [(part.part_number, part.size) for part in result.parts] == [
        (2, 10485760),
        (3, 10485760),
    ]
    assert result.parts[0].etag == '"7778aef83f66abc1fa1e8477f296d394"'
    assert result.parts[0].last_modified == 1289422114


def test_parse_list_multipart_uploads() -> None:
    body = f"""<ListMultipartUploadsResult {NS}>
  <Bucket>bucket</Bucket>
  <NextKeyMarker>my-movie.m2ts</NextKeyMarker>
  <NextUploadIdMarker>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</NextUploadIdMarker>
  <IsTruncated>true</IsTruncated>
  <Upload>
    <Key>my-divisor</Key>
    <UploadId>XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw</UploadId>
    <StorageClass>STANDARD</StorageClass>
    <Initiated>2010-11-10T20:48:33.000Z</Initiated>
  </Upload>
  <Upload>
    <Key>my-movie.m2ts</Key>
    <UploadId>VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
    <Initiated>2010-11-10T20:48:33.000Z</Initiated>
  </Upload>
  <CommonPrefixes><Prefix>photos/</Prefix></CommonPrefixes>
</ListMultipartUploadsResult>"""
    result = s3xml.parse_list_multipart_uploads(body.encode())
    assert [(upload.key, upload.initiated) for upload in result.uploads] == [
        ("my-divisor", 1289422113),
        ("my-movie.m2ts", 1289422113),
    ]
    assert result.uploads[0].upload_id == "XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw"
    assert result.is_truncated is True
    assert result.next_key_marker == "my-movie.m2ts"
    assert result.next_upload_id_marker == "YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ"
    assert result.common_prefixes == ["photos/"]


def acl(*grants: tuple[str, str]) -> bytes:
    xsi = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    items = "".join(
        f'<Grant><Grantee {xsi} xsi:type="Group"><URI>{uri}</URI></Grantee>'
        f"<Permission>{permission}</Permission></Grant>"
        for uri, permission in grants
    )
    owner = (
        f'<Grant><Grantee {xsi} xsi:type="CanonicalUser"><ID>75aa57f0</ID></Grantee>'
        "<Permission>FULL_CONTROL</Permission></Grant>"
    )
    return (
        f"<AccessControlPolicy {NS}><Owner><ID>75aa57f0</ID></Owner>"
        f"<AccessControlList>{owner}{items}</AccessControlList></AccessControlPolicy>"
    ).encode()


def test_acl_public_only_when_all_users_may_read() -> None:
    all_users = s3xml.ALL_USERS_URI
    authenticated = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
    assert s3xml.parse_acl_is_public(acl((all_users, "READ"))) is True
    assert s3xml.parse_acl_is_public(acl((all_users, "FULL_CONTROL"))) is True
    assert s3xml.parse_acl_is_public(acl()) is False
    assert s3xml.parse_acl_is_public(acl((all_users, "WRITE"))) is False
    assert s3xml.parse_acl_is_public(acl((authenticated, "READ"))) is False


def test_parse_delete_result() -> None:
    body = f"""<DeleteResult {NS}>
  <Deleted><Key>sample1.txt</Key></Deleted>
  <Error><Key>sample2.txt</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
</DeleteResult>"""
    result = s3xml.parse_delete_result(body.encode())
    assert result.deleted == ["sample1.txt"]
    assert result.errors == [s3xml.DeleteFailure("sample2.txt", "AccessDenied", "Access Denied")]


# --- request bodies -------------------------------------------------------


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


def test_build_complete_multipart() -> None:
    body = s3xml.build_complete_multipart(
        [(1, '"a54357aff0632cce46d942af68356b38"'), (2, '"0c78"')]
    )
    root = ET.fromstring(body)
    assert local(root.tag) == "CompleteMultipartUpload"
    assert root.tag == f"{{{s3xml.S3_NAMESPACE}}}CompleteMultipartUpload"
    parts = [[(local(child.tag), child.text) for child in part] for part in root]
    assert parts == [
        [("PartNumber", "1"), ("ETag", '"a54357aff0632cce46d942af68356b38"')],
        [("PartNumber", "2"), ("ETag", '"0c78"')],
    ]


def test_build_delete_objects_escapes_keys() -> None:
    keys = ["plain.txt", "a&b<c>.txt", 'quote"d', "ünï code"]
    root = ET.fromstring(s3xml.build_delete_objects(keys))
    assert local(root.tag) == "Delete"
    assert [child.text for child in root.iter() if local(child.tag) == "Key"] == keys
    assert [child.text for child in root.iter() if local(child.tag) == "Quiet"] == ["true"]


def test_build_delete_objects_limits() -> None:
    with pytest.raises(ValueError):
        s3xml.build_delete_objects([])
    with pytest.raises(ValueError):
        s3xml.build_delete_objects([f"k{i}" for i in range(1001)])
    assert s3xml.build_delete_objects([f"k{i}" for i in range(1000)])


@pytest.mark.parametrize(
    ("text", "unix"),
    [
        ("2009-10-12T17:50:30.000Z", 1255369830),
        ("2009-10-12T17:50:30Z", 1255369830),
        ("2009-10-12T17:50:30", 1255369830),
        ("Mon, 12 Oct 2009 17:50:30 GMT", 1255369830),
        ("", 0),
        ("yesterday", 0),
    ],
)
def test_iso_to_unix(text: str, unix: int) -> None:
    assert s3xml.iso_to_unix(text) == unix
