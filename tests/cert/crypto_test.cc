// Encodings, JSON, Ed25519 (RFC 8032 §7.1 test 1), DSSE, statements and
// checkpoints.
#include <sys/stat.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "cert/checkpoint.h"
#include "cert/dsse.h"
#include "cert/encoding.h"
#include "cert/json.h"
#include "cert/keys.h"
#include "cert/statement.h"
#include "tests/cert/cert_test_util.h"

namespace lethe::cert {
namespace {

TEST(EncodingTest, Base64RoundTripsAndIsStrict) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    EXPECT_EQ(*Base64Decode(Base64Encode(s)), s);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_FALSE(Base64Decode("Zm9=").has_value());  // non-zero trailing bits
  EXPECT_FALSE(Base64Decode("Zm8").has_value());
  EXPECT_FALSE(Base64Decode("Zm 8=").has_value());
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_FALSE(HexDecode("AB").has_value());  // lower case only
}

TEST(JsonTest, DumpIsDeterministicAndParsesBack) {
  Json v(Json::Object{
      {"b", Json::Array{1, 2.5, "x\n\"y\x01"}}, {"a", true}, {"c", Json()}});
  const std::string text = v.Dump();
  EXPECT_EQ(text, R"({"a":true,"b":[1,2.5,"x\n\"y\u0001"],"c":null})");
  EXPECT_EQ(*Json::Parse(text), v);
  EXPECT_EQ(Json::Parse(" { \"a\" : [ 1e2 , -0.5 ] } ")->Dump(),
            R"({"a":[100,-0.5]})");
  EXPECT_EQ(Json::Parse(R"("\ud83d\ude00")")->as_string(), "\xf0\x9f\x98\x80");
}

TEST(JsonTest, ParserRejectsWhatRfc8259Forbids) {
  for (const char* bad : {"{\"a\":1,}", "[01]", R"({"a":1,"a":2})", "[1",
                          "\"\x01\"", "tru", "{} x", R"("\ud800")", "1e999"}) {
    EXPECT_FALSE(Json::Parse(bad).ok()) << bad;
  }
  std::string deep(100, '[');
  deep += std::string(100, ']');
  EXPECT_FALSE(Json::Parse(deep).ok());
}

// RFC 8032 §7.1, TEST 1 (empty message).
TEST(Ed25519Test, Rfc8032TestVector1) {
  auto key = PrivateKey::FromSeed(*HexDecode(
      "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"));
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(HexEncode(key->public_key().raw()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  const std::string sig = key->Sign("");
  EXPECT_EQ(HexEncode(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
            "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
  EXPECT_TRUE(key->public_key().Verify("", sig));
  EXPECT_FALSE(key->public_key().Verify("x", sig));
  std::string bad = sig;
  bad[10] ^= 1;
  EXPECT_FALSE(key->public_key().Verify("", bad));
}

TEST(KeysTest, PemRoundTripKeepsKeyAndValidity) {
  PrivateKey key = PrivateKey::Generate();
  key.set_info({"lethe.test/log", 1735689600000000, 1767225600000000});
  auto back = PrivateKey::FromPem(key.Pem());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->public_key().raw(), key.public_key().raw());
  EXPECT_EQ(back->info().name, "lethe.test/log");
  EXPECT_EQ(back->info().not_after_us, 1767225600000000);
  auto pub = PublicKey::FromPem(key.public_key().Pem());
  ASSERT_TRUE(pub.ok()) << pub.status();
  EXPECT_EQ(pub->key_id(), key.public_key().key_id());
  EXPECT_EQ(pub->info().not_before_us, 1735689600000000);
  EXPECT_EQ(pub->key_id(), HexEncode(Sha256(key.public_key().raw())));
  EXPECT_FALSE(PublicKey::FromPem("-----BEGIN PUBLIC KEY-----\nAAAA\n").ok());
}

TEST(KeysTest, JwkIsOkpEd25519WithBase64UrlX) {
  auto key = PrivateKey::FromSeed(*HexDecode(
      "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"));
  auto jwk = Json::Parse(key->public_key().Jwk());
  ASSERT_TRUE(jwk.ok());
  EXPECT_EQ(jwk->as_object().at("kty").as_string(), "OKP");
  EXPECT_EQ(jwk->as_object().at("crv").as_string(), "Ed25519");
  // RFC 8037 Appendix A.2 gives this x for the RFC 8032 test key.
  EXPECT_EQ(jwk->as_object().at("x").as_string(),
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
}

TEST(KeyRingTest, SignsWithNewestValidKey) {
  PrivateKey old_key = PrivateKey::Generate();
  old_key.set_info({"lethe", 1000, 5000});
  PrivateKey new_key = PrivateKey::Generate();
  new_key.set_info({"lethe", 3000, 0});
  KeyRing ring({old_key, new_key});
  EXPECT_EQ((*ring.SignerAt(2000))->public_key().key_id(),
            old_key.public_key().key_id());
  EXPECT_EQ((*ring.SignerAt(4000))->public_key().key_id(),
            new_key.public_key().key_id());
  EXPECT_EQ(ring.SignerAt(500).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(KeysTest, GenerateKeyFilesWritesPrivateKeyOwnerOnly) {
  const std::string dir = ::testing::TempDir() + "/lethe-keys-test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto key = GenerateKeyFiles(dir + "/k", {"lethe", 0, 0});
  ASSERT_TRUE(key.ok()) << key.status();
  struct stat st;
  ASSERT_EQ(stat((dir + "/k.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  auto ring = KeyRing::LoadFiles({dir + "/k.key"});
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_EQ(ring->keys()[0].public_key().key_id(), key->public_key().key_id());
  EXPECT_EQ(GenerateKeyFiles(dir + "/k", {"lethe", 0, 0}).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(
      KeyRing::LoadFiles({dir + "/k.key", dir + "/k.key"}).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(DsseTest, PaeMatchesSpecExample) {
  EXPECT_EQ(Pae("http://example.com/HelloWorld", "hello world"),
            "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
}

TEST(DsseTest, SignedEnvelopeVerifiesAndTamperingFails) {
  PrivateKey key = PrivateKey::Generate();
  const std::vector<PublicKey> keys = {key.public_key()};
  Envelope env = SignEnvelope(kInTotoPayloadType, "{\"a\":1}", key);
  auto parsed = Envelope::Parse(env.Serialize());
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*VerifyEnvelope(*parsed, keys), &keys[0]);
  Envelope changed = *parsed;
  changed.payload = "{\"a\":2}";
  EXPECT_EQ(VerifyEnvelope(changed, keys).status().code(),
            absl::StatusCode::kPermissionDenied);
  changed = *parsed;
  changed.payload_type = "text/plain";
  EXPECT_FALSE(VerifyEnvelope(changed, keys).ok());
  const std::vector<PublicKey> other = {PrivateKey::Generate().public_key()};
  EXPECT_FALSE(VerifyEnvelope(*parsed, other).ok());
}

TEST(StatementTest, RoundTripsThroughJson) {
  const CompletionRecord r = testing::SampleRecord();
  auto text = MakeStatement(r);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_NE(text->find("\"_type\":\"https://in-toto.io/Statement/v1\""),
            std::string::npos);
  EXPECT_NE(text->find("\"predicateType\":\"https://lethe.dev/"
                       "unlearning-completion/v1\""),
            std::string::npos);
  auto back = ParseStatement(*text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*MakeStatement(*back), *text);
  EXPECT_NE(
      Describe(*back).find("forget_accuracy = 0.11, at most the bound 0.2"),
      std::string::npos);
}

TEST(StatementTest, RefusesRecordsThatCannotBeCertified) {
  CompletionRecord r = testing::SampleRecord();
  r.models[0].metrics[0].value = 0.5;  // above its at-most threshold
  EXPECT_EQ(MakeStatement(r).status().code(),
            absl::StatusCode::kInvalidArgument);
  r = testing::SampleRecord();
  r.models[0].epsilon = 0;
  EXPECT_FALSE(MakeStatement(r).ok());
  r = testing::SampleRecord();
  r.models[0].version_after = r.models[0].version_before;
  EXPECT_FALSE(MakeStatement(r).ok());
  r = testing::SampleRecord();
  r.subject_commitment = "short";
  EXPECT_FALSE(MakeStatement(r).ok());
  r = testing::SampleRecord();
  r.completed_us = r.submitted_us - 1;
  EXPECT_FALSE(MakeStatement(r).ok());
  r = testing::SampleRecord();
  r.models.clear();
  EXPECT_FALSE(MakeStatement(r).ok());
}

TEST(StatementTest, SubjectMustMatchPredicate) {
  std::string text = *MakeStatement(testing::SampleRecord());
  const std::string v4 = "/v4\"";
  text.replace(text.find(v4), v4.size(), "/v5\"");
  EXPECT_FALSE(ParseStatement(text).ok());
}

TEST(CheckpointTest, NoteFormatAndKeyIdFollowC2sp) {
  PrivateKey key = PrivateKey::Generate();
  key.set_info({"lethe.test/log", 0, 0});
  Checkpoint cp{"lethe.test/log", 7, Sha256("root")};
  auto note = SignCheckpoint(cp, key);
  ASSERT_TRUE(note.ok());
  const std::string body =
      "lethe.test/log\n7\n" + Base64Encode(Sha256("root")) + "\n";
  ASSERT_EQ(note->substr(0, body.size() + 1), body + "\n");
  const std::string line = note->substr(body.size() + 1);
  ASSERT_EQ(line.substr(0, 3), "\xe2\x80\x94");
  auto sig = Base64Decode(
      line.substr(line.rfind(' ') + 1, line.size() - line.rfind(' ') - 2));
  ASSERT_TRUE(sig.has_value());
  EXPECT_EQ(
      sig->substr(0, 4),
      Sha256("lethe.test/log\n\x01" + key.public_key().raw()).substr(0, 4));
  EXPECT_TRUE(key.public_key().Verify(body, sig->substr(4)));
  const std::string vkey = VerifierKey("lethe.test/log", key.public_key());
  EXPECT_EQ(vkey, "lethe.test/log+" + HexEncode(sig->substr(0, 4)) + "+" +
                      Base64Encode("\x01" + key.public_key().raw()));

  const std::vector<PublicKey> keys = {key.public_key()};
  auto opened = OpenCheckpoint(*note, keys);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->checkpoint.size, 7u);
  std::string forged = *note;
  forged[body.find('7')] = '8';
  EXPECT_FALSE(OpenCheckpoint(forged, keys).ok());
  PublicKey renamed = key.public_key();
  renamed.set_info({"other", 0, 0});
  const std::vector<PublicKey> wrong_name = {renamed};
  EXPECT_FALSE(OpenCheckpoint(*note, wrong_name).ok());
}

}  // namespace
}  // namespace lethe::cert
